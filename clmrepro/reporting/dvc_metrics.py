"""DVC's own views of a report, beside metrics.json (which keeps every record).

- ``dvc_metrics.json``: one flat mapping ``"{experiment}/{population}/{attack}/{eps}/{threat
  model}" -> MRA`` (plus ``summary/...`` counts), so that ``dvc metrics show`` and ``dvc metrics
  diff`` print one number per cell.  An MRA is the mean over the replicates of its cell; a record
  without ``replicate`` (metrics.json schema 1) is replicate 0.
- ``mra_by_attack.csv``: the same cells as rows (``cell``, its parts, ``mra``) for ``dvc plots
  diff``; `PLOT` is the plot definition that clmrepro.emit writes into the spec's dvc.yaml.

No torch, no matplotlib: clmrepro.emit imports `PLOT` while compiling.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

# `dvc plots` settings of mra_by_attack.csv (DVC's bar_horizontal template: one bar per cell,
# revisions side by side in `dvc plots diff`).
PLOT = {"x": "mra", "y": "cell", "template": "bar_horizontal", "title": "MRA per attack",
        "x_label": "MRA (mean over replicates)", "y_label": "experiment/population/attack/eps/threat model"}
PLOT_COLUMNS = ("cell", "experiment", "population", "attack", "eps", "threat_model", "replicates",
                "mra")


def cell_key(record: dict) -> str:
    """``mnist/clm/pgd/0.3/paper``; benign cells have eps 0."""
    return "/".join([str(record["experiment"]), str(record["population"]), str(record["attack"]),
                     f"{float(record.get('eps') or 0.0):.6g}", str(record["threat_model"])])


def cells(records: list[dict]) -> dict[str, dict]:
    """Every cell with its MRA averaged over replicates, sorted by key."""
    grouped: dict[str, dict[int, float]] = defaultdict(dict)
    first: dict[str, dict] = {}
    for record in records:
        key = cell_key(record)
        grouped[key][int(record.get("replicate") or 0)] = float(record["mra"])
        first.setdefault(key, record)
    out = {}
    for key in sorted(grouped):
        values = [grouped[key][r] for r in sorted(grouped[key])]
        # 6 decimals: finer than one image in the 100,000 scores of a full paper cell, without
        # float noise (0.11249999999999999) in `dvc metrics diff`
        out[key] = {"record": first[key], "replicates": len(values),
                    "mra": round(sum(values) / len(values), 6)}
    return out


def flat_metrics(records: list[dict], summary: dict | None = None) -> dict[str, float | int]:
    metrics: dict[str, float | int] = {key: cell["mra"] for key, cell in cells(records).items()}
    for name, value in sorted((summary or {}).items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[f"summary/{name}"] = value
    return metrics


def plot_csv(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PLOT_COLUMNS)
    for key, cell in cells(records).items():
        r = cell["record"]
        writer.writerow([key, r["experiment"], r["population"], r["attack"],
                         f"{float(r.get('eps') or 0.0):.6g}", r["threat_model"], cell["replicates"],
                         repr(cell["mra"])])
    return buffer.getvalue()


def write_dvc_views(records: list[dict], summary: dict | None, outputs: dict,
                    write_text=None) -> list[str]:
    """Write the views the job declares (``dvc_metrics``, ``mra_by_attack``); returns them."""
    if write_text is None:  # atomic: the old file may be a hardlink into DVC's cache
        from clmrepro.core.checkpoints import atomic_write_text as write_text
    written = []
    if "dvc_metrics" in outputs:
        text = json.dumps(flat_metrics(records, summary), indent=2, sort_keys=True) + "\n"
        write_text(outputs["dvc_metrics"], text)
        written.append(outputs["dvc_metrics"])
    if "mra_by_attack" in outputs:
        write_text(outputs["mra_by_attack"], plot_csv(records))
        written.append(outputs["mra_by_attack"])
    return written
