"""MRA against the swept knob: one figure per sweep of the spec (clmrepro.spec.sweeps).

The report job's params carry each sweep (``sweeps``: experiment, swept entry, knobs, and every
member's id with its values).  For a swept population the lines are its attacks (each ε and
threat model, plus benign accuracy); for a swept attack they are the populations it hit.  The
x axis is the first knob; further knobs split the lines.  MRAs are means over replicates.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from clmrepro.reporting.dvc_metrics import cells  # noqa: E402
from clmrepro.reporting.figures import FigureFile, save_png  # noqa: E402

_STYLE = {"paper": "-", "transfer": ":", "adaptive": "--"}


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _label(value: object) -> str:
    return f"{value:g}" if _numeric([value]) else str(value)


def sweep_series(records: list[dict], sweep: dict) -> dict[str, list[tuple[object, float]]]:
    """Line label -> [(x value, MRA)], x = the sweep's first knob, sorted by x."""
    members = {m["id"]: m["values"] for m in sweep["members"]}
    knob, others = sweep["knobs"][0], sweep["knobs"][1:]
    by_population = sweep["entry"] == "population"
    series: dict[str, list] = defaultdict(list)
    for cell in cells([r for r in records if r.get("experiment") == sweep["experiment"]]).values():
        record = cell["record"]
        member = record["population"] if by_population else record["attack"]
        if member not in members:
            continue
        values = members[member]
        if by_population:
            line = ("benign" if record["attack"] == "benign" else
                    f"{record['attack']} ε={float(record['eps']):g} {record['threat_model']}")
        else:
            line = f"{record['population']} ε={float(record['eps']):g} {record['threat_model']}"
        line += "".join(f", {k.split('.')[-1]}={_label(values[k])}" for k in others)
        series[line].append((values[knob], cell["mra"]))
    order = {m["values"][knob]: i for i, m in enumerate(sweep["members"])}
    return {line: sorted(points, key=lambda p: (p[0] if _numeric([p[0]]) else order[p[0]]))
            for line, points in sorted(series.items())}


def sweep_figures(records: list[dict], sweeps: list[dict], directory: str | Path) -> list[FigureFile]:
    directory = Path(directory)
    out = []
    for sweep in sweeps:
        series = sweep_series(records, sweep)
        if not series:
            continue
        knob = sweep["knobs"][0]
        xs = list(dict.fromkeys(m["values"][knob] for m in sweep["members"]))
        numeric = _numeric(xs)
        fig = Figure(figsize=(7, 3.8))
        ax = fig.subplots()
        colours: dict[str, str] = {}
        for line, points in series.items():
            threat = next((t for t in _STYLE if f" {t}" in line), "paper")
            # one colour per attack (or population), one line style per threat model
            family = line.replace(f" {threat}", "")
            colour = "black" if line.startswith("benign") else colours.setdefault(
                family, f"C{len(colours) % 10}")
            x = [p[0] if numeric else xs.index(p[0]) for p in points]
            ax.plot(x, [100 * p[1] for p in points], _STYLE[threat], marker="o", markersize=4,
                    color=colour, label=line)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 20:
            ax.set_xscale("log")
        if numeric:
            ax.set_xticks(xs, [_label(x) for x in xs])
            ax.minorticks_off()
        else:
            ax.set_xticks(range(len(xs)), [_label(x) for x in xs])
        ax.set_xlabel(f"{knob} of {sweep['id']}")
        ax.set_ylabel("MRA %")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=6, loc="best")
        title = f"MRA against {knob}, {sweep['experiment']} / {sweep['id']}"
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        name = f"sweep-{sweep['experiment']}-{sweep['id']}.png".replace("/", "_")
        save_png(fig, directory / name)
        what = ("attack" if sweep["entry"] == "population" else "population") + \
            " and threat model (solid: the paper's protocol, dotted: transfer, dashed: adaptive)"
        out.append(FigureFile(name, title, f"One line per {what}; MRA averaged over replicates. "
                              f"Members: {', '.join(m['id'] for m in sweep['members'])}."))
    return out
