"""A spec's report from its scores, training records and analyses: metrics.json, mra.csv,
DVC's views, and the rendered Markdown and HTML (the report step's work, ``steps.report``).

metrics.json (schema version 2) holds one record per replicate, the cells with their 95%
intervals, the claims with theirs (and each robustness claim's reading under the strongest
attack), the sanity checks (docs/sanity.md) and the summary: only what the records and check
files say (no times, no paths), so two runs of one spec give byte-identical files; provenance
that varies between machines goes to the rendered reports only. Version-1 scores files (no
replicate) are read as replicate 0. Records with per-image values gain the derived
"strongest (per image)" records (reporting.strongest): over the grid's attacks and the check
files' attacks, marked as upper bounds where a check flags.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from clmrepro.core.checkpoints import atomic_write_bytes, atomic_write_json, atomic_write_text
from clmrepro.core.per_image import expected_accuracy, unpack
from clmrepro.plan import paths
from clmrepro.reporting.claims import (FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, counted,
                                       evaluate_claims)
from clmrepro.reporting.dvc_metrics import write_dvc_views
from clmrepro.reporting.estimates import replicate
from clmrepro.reporting.inference import split
from clmrepro.reporting.paper import load_paper_tables, paper_value, reported_regime
from clmrepro.reporting.provenance import collect, consumed_inputs
from clmrepro.reporting.render import ReportData, render_report, write_index
from clmrepro.reporting.robustness import RobustnessSection, assemble, read_check_files
from clmrepro.reporting.sanity import FLAG, PASS, CheckResult
from clmrepro.reporting.stats import Interval
from clmrepro.reporting import per_image_file
from clmrepro.reporting.strongest import (STRONGEST, check_attack_records, mark_upper_bounds,
                                         strongest_records)
from clmrepro.reporting.tables import Cell, paper_table_views, record_sort_key, summarise

SCHEMA_VERSION = 2
IN_MEMORY_ONLY = ("per_image",)  # record fields the report uses but metrics.json leaves out
READABLE_VERSIONS = (1, 2)
MRA_CSV_COLUMNS = ("experiment", "population", "regime", "attack", "eps", "threat_model",
                   "replicate", "mra", "paper")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _checked(record: dict, path: str) -> dict:
    """A record as version 2: replicate 0 when missing (version 1); n_samples is required."""
    record = dict(record)
    record["replicate"] = replicate(record)
    n = record.get("n_samples")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{path}: record {record.get('population')}/{record.get('attack')} "
                         f"has n_samples {n!r}; its interval needs the number of test images "
                         "(a positive integer): re-run the job that wrote this file")
    return record


def merge_scores(paths: list[str], tables: list, attack_params: dict | None = None) -> list[dict]:
    """All records of all scores files (schema version 1 or 2), each with "replicate" and with
    "paper" set from the paper's tables.

    Only the paper's own protocol is compared with the paper; transfer and adaptive numbers
    answer other questions and keep paper = null.
    """
    records = []
    for path in paths:
        scores = _read_json(path)
        if scores.get("schema_version") not in READABLE_VERSIONS:
            raise ValueError(f"{path}: schema_version {scores.get('schema_version')!r} is not "
                             f"one this report reads {READABLE_VERSIONS}: re-run the job that "
                             "wrote it, or update clmrepro")
        for record in scores["records"]:
            record = _checked(record, path)
            # the per-image table stays in memory as each image's expected accuracy
            # (core.per_image); metrics.json keeps the numbers, not the tables
            correct = record.pop("correct", None)
            if correct is not None:
                record["per_image"] = expected_accuracy(unpack(correct)).tolist()
            record["regime"] = reported_regime(record["regime"], record.get("n_submodels"))
            if not record.get("attack_params") and attack_params:
                record["attack_params"] = attack_params.get(record["attack"])
            record["paper"] = (paper_value(tables, record["dataset"], record["regime"],
                                           record["attack"], float(record["eps"]))
                               if record["threat_model"] == "paper" else None)
            records.append(record)
    return sorted(records, key=record_sort_key)


def _place(path: Path, known: set[tuple[str, str]]) -> tuple[str, str, int]:
    """(experiment, population, replicate) of a training.json / analysis.json path.

    K = 1: results/{spec}/{exp}/{pop}/FILE; K >= 2: results/{spec}/{exp}/{pop}/r{r}/FILE
    (docs/architecture.md). A folder named like r1 is a replicate folder unless the scores records
    know a population of that name in that experiment and none one level up.
    """
    folder = path.parent
    match = paths.REPLICATE_FOLDER.match(folder.name)
    flat = (folder.parent.name, folder.name)
    nested = (folder.parent.parent.name, folder.parent.name)
    if match and not (flat in known and nested not in known):
        return nested[0], nested[1], int(match.group(1))
    return flat[0], flat[1], 0


def with_strongest(records: list[dict], check_files: list[dict] = ()) -> list[dict]:
    """The records and the derived strongest-attack records (derived afresh from the grid's
    records and the decoded check files' attacks, reporting.strongest), in report order."""
    measured = [r for r in records if r["attack"] != STRONGEST]
    return sorted(measured + strongest_records(measured, check_files), key=record_sort_key)


def _located(paths: list[str], known: set[tuple[str, str]] = frozenset()) -> list[dict]:
    """{"experiment", "population", "replicate", "record"} for each training/analysis file."""
    items = []
    for path in paths:
        experiment, population, r = _place(Path(path), known)
        record = _read_json(path)
        items.append({"experiment": experiment, "population": population,
                      "replicate": int(record.get("replicate", r)), "record": record})
    return items


def mra_csv(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MRA_CSV_COLUMNS)
    for r in records:
        writer.writerow([r["experiment"], r["population"], r["regime"], r["attack"],
                         f"{float(r['eps']):.6g}", r["threat_model"], r["replicate"],
                         repr(float(r["mra"])),
                         "" if r["paper"] is None else repr(float(r["paper"]))])
    return buffer.getvalue()


def _rounded(value: float | None) -> float | None:
    # six decimals: far below the precision of any MRA, and free of float noise in the JSON
    return None if value is None else round(float(value), 6)


def _interval_json(interval: Interval | None) -> dict:
    if interval is None:
        return {"mean": None, "low": None, "high": None, "method": None, "k": 0, "n": None}
    return {"mean": _rounded(interval.mean), "low": _rounded(interval.low),
            "high": _rounded(interval.high), "method": interval.method, "k": interval.k,
            "n": interval.n}


def cell_summaries(records: list[dict]) -> list[dict]:
    """One entry per (experiment, population, attack, eps, threat model): replicates pooled
    into a mean and its 95% interval, with the paper's number and consistency; a strongest
    cell also names the attacks behind it and, where a check flags, says it is an upper
    bound (reporting.strongest)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = (r["experiment"], r["population"], r["attack"], float(r["eps"]),
               r["threat_model"])
        groups.setdefault(key, []).append(r)
    out = []
    for (experiment, population, attack, eps, threat), found in groups.items():
        papers = {r["paper"] for r in found} - {None}
        cell = Cell(found, papers.pop() if len(papers) == 1 else None)
        entry = {"experiment": experiment, "population": population,
                 "regime": found[0]["regime"], "attack": attack, "eps": eps,
                 "threat_model": threat, **_interval_json(cell.interval),
                 "paper": cell.paper, "consistent": cell.consistent}
        if attack == STRONGEST:
            # what the minimum was taken over, and whether a check makes it an upper bound
            entry.update(derived_from=cell.derived_from, upper_bound=bool(cell.flagged_by),
                         flagged_by=cell.flagged_by)
        out.append(entry)
    return out


def _optional(value: float | None) -> float | None:
    return None if value is None else _rounded(value)


def _evidence_json(e) -> dict:
    """A claim row: its direction's interval and outcome; the paper's effect and the size
    verdict; for ≈ rows the 90% interval of the equivalence test, the smallest margin it
    confirms and its power; the row again with clean accuracy taken out (issue 27)."""
    out = {"label": e.label, "left": e.left_name, "right": e.right_name,
           "relation": e.relation, "outcome": e.outcome, **_interval_json(e.interval),
           "paper_effect": e.paper_effect, "effect": e.effect, "off_setting": e.off_setting}
    if e.cell is not None:  # what the row compares: benchmarks/recompute_results.py reads it
        _family, attack, eps, left, right = e.cell
        out["cell"] = {"attack": attack, "eps": eps, "left": left, "right": right,
                       "threat_model": "adaptive" if attack == STRONGEST else "paper"}
    if e.equivalence is not None:
        out["equivalence"] = {"level": 0.9, "low": _rounded(e.equivalence.low),
                              "high": _rounded(e.equivalence.high),
                              "confirmable_margin": _optional(e.confirmable_margin),
                              "power": _optional(e.power)}
    if e.clean_taken_out is not None:
        c = e.clean_taken_out
        out["clean_taken_out"] = {"outcome": c.outcome, **_interval_json(c.interval),
                                  "confounded": e.confounded}
    return out


def _strongest_json(result) -> dict | None:
    """A claim's verdict under the strongest attack (adaptive), or None when it has none."""
    if result.strongest is None:
        return None
    return {"verdict": result.strongest.outcome, "threat_model": "adaptive",
            "evidence": [_evidence_json(result.strongest)]}


def _measure_json(m) -> dict:
    interval = None if m.interval is None else _interval_json(m.interval)
    value = m.value if m.kind == "count" or m.value is None else _rounded(m.value)
    return {"label": m.label, "kind": m.kind, "value": value, "interval": interval,
            "of": m.of, "flags": m.flags}


def sanity_json(results: list[CheckResult]) -> list[dict]:
    return [{"check": r.check, "experiment": r.experiment, "population": r.population,
             "regime": r.regime, "threat_model": r.threat_model, "verdict": r.verdict,
             "rule": r.rule, "source": r.source,
             "evidence": [_measure_json(m) for m in r.evidence], "reason": r.reason or None}
            for r in results]


def metrics_json(spec_name: str, description: str, records: list[dict], claims: list,
                 tables: list, robustness: RobustnessSection | None = None) -> dict:
    cells = summarise(paper_table_views(tables, records))
    robustness = robustness or RobustnessSection()
    return {
        "schema_version": SCHEMA_VERSION, "spec": spec_name, "description": description,
        "records": [{k: v for k, v in r.items() if k not in IN_MEMORY_ONLY} for r in records],
        "cells": cell_summaries(records),
        "claims": [{"id": c.claim.id, "verdict": c.verdict,
                    "setting": list(c.claim.setting) if c.claim.setting else None,
                    "off_setting": c.off_setting, "effect": c.effect,
                    "effect_text": c.effect_text, "clean_verdict": c.clean_verdict,
                    "confounded_rows": c.confounded_rows,
                    "evidence": [_evidence_json(e) for e in c.evidence],
                    "strongest": _strongest_json(c)}
                   for c in claims],
        "sanity": sanity_json(list(robustness.results)),
        # claims measured only outside the paper's setting do not count (claims.counted)
        "summary": {"claims_hold": sum(c.verdict == HOLDS for c in counted(claims)),
                    "claims_fail": sum(c.verdict == FAILS for c in counted(claims)),
                    "claims_inconclusive": sum(c.verdict == INCONCLUSIVE
                                               for c in counted(claims)),
                    "claims_run": sum(c.verdict != NOT_RUN for c in counted(claims)),
                    "claims_total": len(counted(claims)),
                    "claims_off_setting": len(claims) - len(counted(claims)),
                    "cells_compared": cells.compared,
                    "cells_consistent": cells.consistent,
                    "cells_inconsistent": cells.inconsistent, "cells_not_run": cells.not_run,
                    "tolerance_points": cells.tolerance_points,
                    "checks_flagged": robustness.counts[FLAG],
                    "checks_passed": robustness.counts[PASS],
                    "checks_not_run": robustness.counts[NOT_RUN]},
    }


def build_report(job: dict) -> None:
    """The report job's outputs from its inputs (docs/architecture.md, report job)."""
    params, inputs, outputs = job["params"], job["inputs"], job["outputs"]
    spec_name = params.get("spec_name") or job.get("spec", "")
    tables = load_paper_tables(inputs["paper_tables"])
    # the deterministic inference rules answer another question: their own section only
    records, rule_records = split(merge_scores(_as_list(inputs.get("scores")), tables,
                                               params.get("attack_params")))
    # the sanity job's check files are absent on plans written before it existed; their
    # attacks join the strongest rows, whose cells a flagging check marks as upper bounds
    check_files = read_check_files(_as_list(inputs.get("sanity")))
    records = with_strongest(records, check_files)
    robustness = assemble(records, check_files)
    records = mark_upper_bounds(records, robustness.results)
    known = {(r["experiment"], r["population"]) for r in records}
    trainings = _located(_as_list(inputs.get("records")), known)
    analyses = [{**item["record"], "experiment": item["experiment"],
                 "population": item["record"].get("population", item["population"]),
                 "replicate": item["replicate"]}
                for item in _located(_as_list(inputs.get("analyses")), known)]
    # evaluated once: metrics.json and both rendered reports read these results
    claims = evaluate_claims(records, analyses, tables=tables)
    description = params.get("description", "")
    metrics = metrics_json(spec_name, description, records, claims, tables, robustness)
    metrics["records"] += [{k: v for k, v in r.items() if k not in IN_MEMORY_ONLY}
                           for r in rule_records]
    atomic_write_json(outputs["metrics"], metrics)
    if "per_image" in outputs:  # plans compiled before issue 26 lack it
        atomic_write_bytes(outputs["per_image"], per_image_file.encode(
            records + rule_records + check_attack_records(check_files)))
    atomic_write_text(outputs["mra_csv"], mra_csv(records))
    # flat MRAs for `dvc metrics show/diff`, one row per cell for `dvc plots diff`
    write_dvc_views(records, metrics.get("summary"), outputs, atomic_write_text)

    spec_path = inputs.get("spec") or params.get("spec_path")
    # Snakemake's benchmark files, when present (clmrepro.plan.paths spells their place)
    benchmarks = Path(paths.benchmark(spec_name, "any")).parent
    provenance = collect(params, spec_path, "requirements.lock", benchmarks,
                         trainings=[item["record"] for item in trainings],
                         manifests=_as_list(inputs.get("manifests")))
    provenance.inputs = consumed_inputs(records + rule_records, trainings)
    data = ReportData(spec_name=spec_name, description=description,
                      departures=list(params.get("departures", [])), records=records,
                      trainings=trainings, analyses=analyses, tables=tables,
                      provenance=provenance, claims=claims,
                      sweeps=list(params.get("sweeps") or []),
                      precision_notes=list(params.get("precision_notes") or []),
                      robustness=robustness, rule_records=rule_records)
    render_report(data, outputs["report_md"], outputs["report_html"], outputs["figures"])
    write_index(Path(outputs["report_html"]).parent.parent)
