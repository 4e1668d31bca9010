"""Render a spec's report (Markdown + self-contained HTML) and the index of all reports.

The templates live in clmrepro/reporting/templates. Numbers reach them only through the
formatting functions of clmrepro.reporting.tables (registered as Jinja filters).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from tabulate import tabulate

from clmrepro.core.checkpoints import atomic_write_text
from clmrepro.reporting import baselines as base
from clmrepro.reporting import figures as figs
from clmrepro.reporting import tables as tab
from clmrepro.reporting.agreement import pattern_lines
from clmrepro.reporting.claims import VERDICTS, ClaimResult, counted, first_screen
from clmrepro.reporting.inference import inference_tables
from clmrepro.reporting.paper import (ATTACK_LABELS, DATASET_LABELS, REGIME_LABELS,
                                      THREAT_LABELS, PaperTable, paper_dataset)
from clmrepro.reporting.provenance import Provenance
from clmrepro.reporting.robustness import RobustnessSection
from clmrepro.reporting.strongest import STRONGEST
from clmrepro.reporting.sweeps import sweep_figures
from clmrepro.reporting.tables import markdown_text

THREAT_MODEL_TEXT = {
    "paper": "The paper's protocol: for each batch one submodel, drawn uniformly, crafts the "
             "adversarial images; every submodel then classifies them and MRA (eq. 6) averages "
             "their accuracies. With n submodels, the crafting one is scored 1/n of the time; "
             "the rest is transfer.",
    "transfer": "Transfer: images crafted on submodel i are scored on every other submodel j "
                "(the n × n matrix, as in DVERGE and TRS); the MRA shown is the off-diagonal "
                "mean. It isolates how well attacks move between submodels.",
    "adaptive": "Adaptive: the attacker targets the defence itself and averages the loss over "
                "all submodels at each step (exact expectation over the random dispatch, EOT; "
                "Athalye et al. 2018, Tramèr et al. 2020); MRA is then the expected accuracy of "
                "random dispatch.",
}
INTERVALS_TEXT = (
    "Every reproduced number is a mean with its 95% confidence interval, written mean [low, "
    "high]. With K ≥ 2 replicates (independent trainings and attacks) it is a Student t "
    "interval over the K replicate MRAs. With K = 1 it is the Wilson score interval over the N "
    "test images: it covers which images were drawn, not how a second training run would "
    "differ, which is often larger (several points on MNIST), so K = 1 intervals are too "
    "narrow for that question. A cell is consistent with the paper when the paper's number "
    "lies inside its interval widened by {tolerance:g} points on each side (the paper's number "
    "is itself one run); otherwise the signed gap mean − paper is shown. Claims compare two "
    "cells through the interval of their difference, paired by replicate (K ≥ 2), image by "
    "image when one replicate carries per-image results (K = 1), or else by Newcombe's "
    "interval for two proportions, and say holds, fails or inconclusive; docs/statistics.md "
    "gives the rules.")
ADAPTIVE_WHY = (
    "Why the adaptive attack matters: a random-dispatch defence only hides which submodel will "
    "answer. An attacker who knows the population (the paper's own white-box setting) need not "
    "guess: attacking all submodels at once finds perturbations that fool most of them, so the "
    "paper's single-submodel protocol can overstate robustness (Dbouk & Shanbhag, ICML 2022, "
    "found randomized ensembles weaker than one adversarially trained model). The adaptive "
    "number is the one to trust.")

STRONGEST_TEXT = (
    "Strongest (per image): for each test image the lowest expected accuracy over every attack "
    "run under that threat model (Carlini et al. 2019: report the per-example minimum over all "
    "attacks); its MRA is the mean over the images. It is a lower bound on what these attacks "
    "leave, not one more attack.")
SUCCESS_TEXT = {
    "expected-accuracy": (
        "success: expected-accuracy — each sub-attack's success on an image is judged on the "
        "exact expected accuracy over all submodels, and each image keeps the sub-attack "
        "result with the lowest one. This departs from torchattacks' MultiAttack, which judges "
        "success with one random submodel's answer and then skips the later sub-attacks for "
        "that image. Inside each APGD, too, which images are attacked and which iterate is "
        "kept are decided on the expected accuracy (core.attacks.apgd), where torchattacks' "
        "APGD decides with one random draw."),
}


def dataset_notes(records: list[dict]) -> list[str]:
    """Say plainly when a run's dataset only stands for one of the paper's (mnist-5k)."""
    notes = []
    for dataset in sorted({r["dataset"] for r in records}):
        family = paper_dataset(dataset)
        if family is None:
            notes.append(f"Dataset {dataset} is none of the paper's: its numbers are not "
                         "compared with the paper.")
        elif family != dataset:
            notes.append(f"Dataset {dataset} is compared with the paper's "
                         f"{DATASET_LABELS[family]} numbers although it is not the same data "
                         "(a departure from the paper).")
    return notes


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clmrepro.reporting", "templates"),
        # Escape everything in HTML templates: a spec description is user text.
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters.update(md=markdown_text, pct=tab.pct, points=tab.points, bounds=tab.bounds,
                       eps=tab.eps_text,
                       params=tab.params_text,
                       attack=lambda a: ATTACK_LABELS.get(a, a),
                       regime=lambda r: REGIME_LABELS.get(r, r),
                       dataset=lambda d: DATASET_LABELS.get(d, d),
                       threat=lambda t: THREAT_LABELS.get(t, t))
    env.globals["THREAT_MODELS"] = tab.THREAT_MODELS  # clmrepro.fields: their one home
    return env


@dataclass
class ReportData:
    spec_name: str
    description: str
    departures: list[str]
    records: list[dict]            # merged scores records, "paper" filled, sorted
    trainings: list[dict]          # {"experiment", "population", "record": training.json}
    analyses: list[dict]           # analysis.json + "experiment", "population"
    tables: list[PaperTable]
    provenance: Provenance
    claims: list[ClaimResult]      # reporting.claims.evaluate_claims, run once by build
    sweeps: list[dict] = field(default_factory=list)  # report job's `sweeps` (spec.sweeps)
    # stated choices of precision (replicates, transfer/adaptive subsets): not departures
    precision_notes: list[str] = field(default_factory=list)
    # the robustness section, assembled once by reporting.robustness.assemble
    robustness: RobustnessSection = field(default_factory=RobustnessSection)
    # records of the deterministic inference rules (reporting.inference)
    rule_records: list[dict] = field(default_factory=list)


def strongest_sources(records: list[dict]) -> list[str]:
    """"mnist/clm adaptive ε = 0.3: ARC, PGD": what each strongest row is the minimum of."""
    found: dict[tuple, set[str]] = {}
    for r in records:
        if r["attack"] == STRONGEST:
            key = (r["experiment"], r["population"], r["threat_model"], float(r["eps"]))
            found.setdefault(key, set()).update(r.get("derived_from") or [])
    return [f"{e}/{p} {t} ε = {tab.eps_text(eps)}: "
            + ", ".join(ATTACK_LABELS.get(a, a) for a in sorted(attacks))
            for (e, p, t, eps), attacks in sorted(found.items())]


def adaptive_params(records: list[dict]) -> list[tuple[str, str, list[str]]]:
    """(attack label, effective parameters, notes) of every adaptive attack run."""
    found: dict[str, set[str]] = {}
    notes: dict[str, set[str]] = {}
    for r in records:
        if r["threat_model"] != "adaptive" or r["attack"] == STRONGEST:
            continue
        params = r.get("attack_params") or {}
        found.setdefault(r["attack"], set()).add(tab.params_text(params))
        success = params.get("success") if isinstance(params, dict) else None
        if success in SUCCESS_TEXT:
            notes.setdefault(r["attack"], set()).add(SUCCESS_TEXT[success])
    return [(ATTACK_LABELS.get(a, a), " | ".join(sorted(found[a])), sorted(notes.get(a, ())))
            for a in sorted(found)]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    return tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)


def _context(data: ReportData, figures_dir: Path) -> dict:
    views = tab.paper_table_views(data.tables, data.records)
    claims = data.claims
    figures = (figs.mra_bar_figures(views, figures_dir)
               + figs.conv1_figures(data.trainings, figures_dir)
               + figs.conv1_spread_figure(data.trainings, figures_dir)
               + figs.prse_figures(data.trainings, figures_dir)
               + figs.saliency_figures(data.analyses, figures_dir)
               + figs.transfer_figures(data.records, figures_dir)
               + sweep_figures(data.records, data.sweeps, figures_dir))
    baselines = _baselines(data)
    figures += figs.cost_figures(baselines["tables"], baselines["costs"], figures_dir)
    return {
        "baselines": baselines, "inference_text": INFERENCE_TEXT,
        "inference": inference_tables(data.records, data.rule_records),
        "robustness": data.robustness, "strongest_text": STRONGEST_TEXT,
        "strongest_sources": strongest_sources(data.records),
        "adaptive_params": adaptive_params(data.records),
        "data": data, "views": views, "claims": claims,
        "claim_counts": {v: sum(c.verdict == v for c in counted(claims)) for v in VERDICTS},
        "counted_claims": len(counted(claims)),
        "screen": dict(zip(("rows", "not_run", "off"), first_screen(claims))),
        "patterns": pattern_lines(views),
        "methods": [tab.methods_text(tab.view_cells(v)) for v in views],
        "summary": tab.summarise(views), "threat_rows": tab.threat_model_rows(data.records),
        "others": tab.other_rows(data.tables, data.records), "figures": figures,
        "threat_text": THREAT_MODEL_TEXT, "adaptive_why": ADAPTIVE_WHY, "prov": data.provenance,
        "intervals_text": INTERVALS_TEXT.format(tolerance=tab.TOLERANCE_POINTS),
        "NOT_RUN": tab.NOT_RUN, "dataset_notes": dataset_notes(data.records),
    }


BASELINES_TEXT = (
    "ADP (Pang et al. 2019), GAL (Kariyappa & Qureshi 2019), TRS (Yang et al. 2021) and DVERGE "
    "(Yang et al. 2020) diversify an ensemble by training its members jointly; the paper compares "
    "CLM only with ULM. Here every population is scored as the paper scores CLM: random dispatch "
    "(MRA, eq. 6), the same attacks, budgets, test images and threat models. Cells: mean MRA "
    "[95% interval] in percent.")


INFERENCE_TEXT = (
    "How the population answers. Random: the paper's random dispatch, scored by its expected "
    "accuracy (MRA). Average: the argmax of the submodels' mean output; vote: their majority "
    "(a tie goes to the lowest label). Both are deterministic classifiers, scored as one model "
    "on the same images: under the paper protocol the images crafted on one random submodel; "
    "under the adaptive threat model random dispatch faces the expected-loss attack and the "
    "deterministic rules the same attack run white-box on the averaged population (ARC, which "
    "targets random dispatch, is not run against them). Cells: mean [95% interval] in percent.")


def _baselines(data: ReportData) -> dict:
    tables = base.baseline_tables(data.records)
    costs = base.training_costs(data.trainings) if tables else []
    shown = {(t.experiment, pop) for t in tables for pop, _, _ in t.rows}
    costs = [c for c in costs if (c.experiment, c.population) in shown]
    verdicts = base.clm_vs_baselines(data.records) if tables else []
    return {
        "text": BASELINES_TEXT, "tables": tables, "costs": costs, "verdicts": verdicts,
        "degenerate": [d.text() for d in base.degenerate_losses(data.records)] if tables else [],
        "cost_header": ["experiment", "population", "regime", "training (s)", "with start (s)"],
        "cost_rows": [[c.experiment, c.population, REGIME_LABELS.get(c.regime, c.regime),
                       f"{c.own_seconds:.1f}", f"{c.total_seconds:.1f}"] for c in costs],
        "verdict_header": ["experiment", "baseline", "cell", "CLM", "baseline MRA",
                           "CLM − baseline", "verdict"],
        "verdict_rows": [[v.experiment, v.baseline, v.label, tab.value_text(v.clm, "percent"),
                          tab.value_text(v.other, "percent"),
                          tab.difference_text(v.interval, "percent"), v.outcome]
                         for v in verdicts],
    }


def _markdown_tables(context: dict) -> dict:
    """Pre-rendered tabulate tables for the Markdown report."""
    md = {"views": [_md_table(*tab.markdown_rows(v)) for v in context["views"]]}
    md["robustness"] = context["robustness"].markdown_tables()
    md["threat"] = _md_table(
        ["experiment", "population", "attack", "ε", "paper protocol", "transfer", "adaptive",
         "paper (its protocol)"],
        [[r.experiment, r.population, ATTACK_LABELS.get(r.attack, r.attack), tab.eps_text(r.eps),
          r.cells["paper"].text_with_size(), r.cells["transfer"].text_with_size(),
          r.cells["adaptive"].text_with_size(),
          tab.pct(r.cells["paper"].paper) if r.cells["paper"].paper is not None
          else tab.NOT_IN_PAPER] for r in context["threat_rows"]])
    md["others"] = _md_table(
        ["experiment", "dataset", "population", "attack", "ε", "MRA [95% interval]", "K",
         "samples", "crafting", "effective parameters"],
        [[r.experiment, r.dataset, r.population, ATTACK_LABELS.get(r.attack, r.attack),
          tab.eps_text(r.eps), r.cell.text(), str(r.cell.k), str(r.cell.samples), r.crafting,
          r.params] for r in context["others"]])
    baselines = context["baselines"]
    md["baselines"] = [_md_table(t.header(), t.markdown_rows()) for t in baselines["tables"]]
    md["inference"] = [_md_table(t.header(), t.markdown_rows()) for t in context["inference"]]
    md["costs_training"] = _md_table(baselines["cost_header"], baselines["cost_rows"])
    md["baseline_verdicts"] = _md_table(baselines["verdict_header"], baselines["verdict_rows"])
    md["costs"] = _md_table(["job", "wall time", "peak memory (max RSS)"],
                            [[c.job, c.wall, c.peak_memory] for c in context["prov"].costs])
    return md


def render_report(data: ReportData, report_md: str | Path, report_html: str | Path,
                  figures_dir: str | Path) -> None:
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):
        stale.unlink()
    context = _context(data, figures_dir)
    env = environment()
    images = {f.name: base64.b64encode((figures_dir / f.name).read_bytes()).decode("ascii")
              for f in context["figures"]}
    html = env.get_template("report.html.j2").render(images=images, **context)
    link = Path(os.path.relpath(figures_dir, Path(report_md).parent)).as_posix()
    md = env.get_template("report.md.j2").render(md=_markdown_tables(context),
                                                 figures_link=link, **context)
    atomic_write_text(report_html, html)
    atomic_write_text(report_md, md)


# ---- index of every rendered spec ----------------------------------------------------------

def index_entries(reports_root: str | Path) -> list[dict]:
    entries = []
    for metrics_path in sorted(Path(reports_root).glob("*/metrics.json")):
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a report being written right now; the next refresh lists it
        records = metrics.get("records", [])
        compared = [r for r in records if r.get("paper") is not None]
        within = [r for r in compared if abs(r["mra"] - r["paper"]) * 100.0
                  <= tab.TOLERANCE_POINTS + 1e-9]
        summary = metrics.get("summary", {})
        entries.append({"spec": metrics_path.parent.name,
                        "description": metrics.get("description", ""),
                        "records": len(records),
                        # the report's own cell counts (replicates pooled per cell) when
                        # present: cells_consistent (version 2) or cells_within (version 1)
                        "compared": summary.get("cells_compared", len(compared)),
                        "within": summary.get("cells_consistent",
                                              summary.get("cells_within", len(within))),
                        "claims_hold": summary.get("claims_hold"),
                        "claims_run": summary.get("claims_run"),
                        "claims_total": summary.get("claims_total")})
    return entries


def write_index(reports_root: str | Path) -> list[dict]:
    """Rewrite reports/index.{html,md} from every reports/*/metrics.json (atomic renames, so
    concurrent report jobs never leave a torn index; the last writer's scan wins)."""
    root = Path(reports_root)
    entries = index_entries(root)
    env = environment()
    context = {"entries": entries, "tolerance": tab.TOLERANCE_POINTS}
    atomic_write_text(root / "index.html", env.get_template("index.html.j2").render(**context))
    atomic_write_text(root / "index.md", env.get_template("index.md.j2").render(**context))
    return entries
