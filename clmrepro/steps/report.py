"""Report step: merge every scores file, compare with the paper, render the reports.

``python -m clmrepro.steps.report JOB.json``. metrics.json holds only what the records say
(no times, no paths), so two runs of one spec give byte-identical files; provenance that
varies between machines goes to the rendered reports only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from clmrepro.core.checkpoints import atomic_write_json, atomic_write_text
from clmrepro.plan import paths
from clmrepro.reporting.claims import HOLDS, NOT_RUN, evaluate_claims
from clmrepro.reporting.dvc_metrics import write_dvc_views
from clmrepro.reporting.paper import load_paper_tables, paper_value
from clmrepro.reporting.provenance import collect
from clmrepro.reporting.render import ReportData, render_report, write_index
from clmrepro.reporting.tables import paper_table_views, record_sort_key, summarise
from clmrepro.steps.common import Job, step_main

MRA_CSV_COLUMNS = ("experiment", "population", "regime", "attack", "eps", "threat_model", "mra",
                   "paper")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def merge_scores(paths: list[str], tables: list, attack_params: dict | None = None) -> list[dict]:
    """All records of all scores files, each with "paper" set from the paper's tables.

    Only the paper's own protocol is compared with the paper; transfer and adaptive numbers
    answer other questions and keep paper = null.
    """
    records = []
    for path in paths:
        for record in _read_json(path)["records"]:
            record = dict(record)
            if not record.get("attack_params") and attack_params:
                record["attack_params"] = attack_params.get(record["attack"])
            record["paper"] = (paper_value(tables, record["dataset"], record["regime"],
                                           record["attack"], float(record["eps"]))
                               if record["threat_model"] == "paper" else None)
            records.append(record)
    return sorted(records, key=record_sort_key)


def _located(paths: list[str]) -> list[dict]:
    """training.json / analysis.json live at results/{spec}/{exp}/{pop}/ (architecture.md)."""
    items = []
    for path in paths:
        p = Path(path)
        items.append({"experiment": p.parent.parent.name, "population": p.parent.name,
                      "record": _read_json(p)})
    return items


def mra_csv(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MRA_CSV_COLUMNS)
    for r in records:
        writer.writerow([r["experiment"], r["population"], r["regime"], r["attack"],
                         f"{float(r['eps']):.6g}", r["threat_model"], repr(float(r["mra"])),
                         "" if r["paper"] is None else repr(float(r["paper"]))])
    return buffer.getvalue()


def run_report(job: Job) -> None:
    params, inputs, outputs = job["params"], job["inputs"], job["outputs"]
    spec_name = params.get("spec_name") or job.get("spec", "")
    tables = load_paper_tables(inputs["paper_tables"])
    records = merge_scores(_as_list(inputs.get("scores")), tables, params.get("attack_params"))
    trainings = _located(_as_list(inputs.get("records")))
    analyses = [{**item["record"], "experiment": item["experiment"],
                 "population": item["record"].get("population", item["population"])}
                for item in _located(_as_list(inputs.get("analyses")))]
    claims = evaluate_claims(records, analyses)
    cells = summarise(paper_table_views(tables, records))
    metrics = {
        "schema_version": 1, "spec": spec_name, "description": params.get("description", ""),
        "records": records,
        "claims": [{"id": c.claim.id, "verdict": c.verdict} for c in claims],
        "summary": {"claims_hold": sum(c.verdict == HOLDS for c in claims),
                    "claims_run": sum(c.verdict != NOT_RUN for c in claims),
                    "claims_total": len(claims), "cells_compared": cells.compared,
                    "cells_within": cells.within,
                    "tolerance_points": cells.tolerance_points},
    }
    atomic_write_json(outputs["metrics"], metrics)
    atomic_write_text(outputs["mra_csv"], mra_csv(records))
    # flat MRAs for `dvc metrics show/diff`, one row per cell for `dvc plots diff`
    write_dvc_views(records, metrics.get("summary"), outputs, atomic_write_text)

    spec_path = inputs.get("spec") or params.get("spec_path")
    # Snakemake's benchmark files, when present (clmrepro.plan.paths spells their place)
    benchmarks = Path(paths.benchmark(spec_name, "any")).parent
    provenance = collect(params, spec_path, "requirements.lock", benchmarks)
    data = ReportData(spec_name=spec_name, description=params.get("description", ""),
                      departures=list(params.get("departures", [])), records=records,
                      trainings=trainings, analyses=analyses, tables=tables,
                      provenance=provenance, sweeps=list(params.get("sweeps") or []))
    render_report(data, outputs["report_md"], outputs["report_html"], outputs["figures"])
    write_index(Path(outputs["report_html"]).parent.parent)


def main(argv: list[str] | None = None) -> int:
    return step_main(run_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
