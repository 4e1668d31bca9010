"""The report's figures as PNG files (matplotlib, Agg, no pyplot global state).

Fig. 4 (conv1 filters and their spread), Fig. 5 (monitored counter-linked weights over PRSE
steps), Fig. 6 (saliency cosine similarity per pair), transfer-matrix heat maps, and
reproduced-vs-paper MRA bars. Each function writes its files and returns what it wrote.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from clmrepro.core.checkpoints import atomic_write_bytes  # noqa: E402
from clmrepro.reporting.paper import ATTACK_LABELS, REGIME_LABELS  # noqa: E402
from clmrepro.reporting.estimates import replicate  # noqa: E402
from clmrepro.reporting.tables import (PaperTableView, eps_text, methods_text,  # noqa: E402
                                       view_cells)

# PNG metadata normally carries the matplotlib version; drop it so reruns write equal bytes.
_PNG_METADATA = {"Software": None}
_MAX_FILTERS = 6  # the paper's Fig. 4 shows LeNet5's six conv1 filters


@dataclass(frozen=True)
class FigureFile:
    name: str      # file name inside the figures directory
    title: str
    caption: str


def save_png(fig: Figure, path: Path) -> None:
    """Render in memory, then replace the file atomically like every other artifact: with a
    linking DVC cache (.dvc/config cache.type) the old file may be a hardlink into the cache,
    and writing into it in place (root ignores its read-only mode) would change the cache."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata=_PNG_METADATA)
    atomic_write_bytes(path, buffer.getvalue())


def _save(fig: Figure, directory: Path, name: str) -> None:
    save_png(fig, directory / name)


def _slug(*parts: object) -> str:
    return "-".join(str(p).replace("/", "_").replace(" ", "_") for p in parts)


def first_replicate(items: list[dict]) -> list[dict]:
    """Pictures of one population show replicate 0 (K pictures of one thing add nothing)."""
    return [item for item in items if replicate(item) == 0]


def conv1_figures(trainings: list[dict], directory: Path) -> list[FigureFile]:
    """One grid per population: rows are submodels, columns conv1 filters (input channel 0)."""
    out = []
    for item in first_replicate(trainings):
        weights = [np.asarray(w, dtype=float) for w in item["record"].get("conv1") or []]
        if not weights or weights[0].ndim != 4:  # no first conv (your own architecture)
            continue
        n_filters = min(_MAX_FILTERS, weights[0].shape[0])
        limit = max(float(np.abs(w[:n_filters, 0]).max()) for w in weights) or 1.0
        fig = Figure(figsize=(1.3 * n_filters + 1.6, 1.2 * len(weights) + 0.6))
        axes = fig.subplots(len(weights), n_filters, squeeze=False)
        for i, w in enumerate(weights):
            for f in range(n_filters):
                ax = axes[i][f]
                image = ax.imshow(w[f, 0], cmap="coolwarm", vmin=-limit, vmax=limit)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[i][0].set_ylabel(f"{i}\nσ={w.std():.3f}", rotation=0, labelpad=22,
                                  fontsize=8, va="center")
        fig.colorbar(image, ax=axes, shrink=0.6)
        name = f"conv1-{_slug(item['experiment'], item['population'])}.png"
        title = f"conv1 filters, {item['experiment']} / {item['population']}"
        fig.suptitle(title, fontsize=10)
        _save(fig, directory, name)
        out.append(FigureFile(name, title, "Rows: submodels (σ = std of all conv1 weights); "
                              "columns: filters, input channel 0; one colour scale (cf. Fig. 4)."))
    return out


def conv1_spread_figure(trainings: list[dict], directory: Path) -> list[FigureFile]:
    """Std of conv1 weights per submodel, every population side by side (Fig. 4's spread)."""
    spread: dict[str, list[float]] = {}
    for t in trainings:
        for w in t["record"].get("conv1") or []:
            spread.setdefault(f"{t['experiment']}/{t['population']}", []).append(
                float(np.asarray(w, dtype=float).std()))
    rows = sorted(spread.items())
    if not rows:
        return []
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    for k, (label, stds) in enumerate(rows):
        ax.scatter([k] * len(stds), stds, s=18, label=label)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=20, fontsize=8)
    ax.set_ylabel("std of conv1 weights")
    ax.set_title("conv1 weight spread per submodel")
    fig.tight_layout()
    _save(fig, directory, "conv1-spread.png")
    return [FigureFile("conv1-spread.png", "conv1 weight spread per submodel",
                       "Each dot is one submodel (of every replicate); CLM is expected to "
                       "spread wider (Fig. 4).")]


def prse_figures(trainings: list[dict], directory: Path) -> list[FigureFile]:
    """The monitored counter-linked weight of every submodel after each PRSE (Fig. 5)."""
    out = []
    for item in first_replicate(trainings):
        prse = item["record"].get("prse") or {}
        monitored = np.asarray(prse.get("monitored") or [], dtype=float)
        if monitored.ndim != 2 or monitored.shape[0] == 0:
            continue
        fig = Figure(figsize=(7, 3.2))
        ax = fig.subplots()
        for i in range(monitored.shape[1]):
            ax.plot(monitored[:, i], linewidth=1, label=f"submodel {i}")
        ax.set_xlabel("PRSE step")
        ax.set_ylabel(f"conv1.weight{list(prse.get('monitored_index', []))}")
        ax.legend(fontsize=6, ncol=2)
        title = f"Monitored CLWs, {item['experiment']} / {item['population']}"
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        name = f"prse-{_slug(item['experiment'], item['population'])}.png"
        _save(fig, directory, name)
        out.append(FigureFile(name, title, "Even submodels are pushed up, odd ones down "
                              "(eq. 5, 0-based as in the authors' code); cf. Fig. 5."))
    return out


def saliency_figures(analyses: list[dict], directory: Path) -> list[FigureFile]:
    """Box plot of per-sample saliency cosine (eq. 7) per submodel pair, per experiment."""
    out = []
    analyses = first_replicate(analyses)
    for experiment in sorted({a.get("experiment", "") for a in analyses}):
        group = sorted((a for a in analyses if a.get("experiment", "") == experiment),
                       key=lambda a: a["population"])
        data, labels, means = [], [], []
        for analysis in group:
            pairs = sorted(analysis["saliency_cosine"].items())
            values = [v for _, cosines in pairs for v in cosines]
            if values:
                means.append((analysis["population"], float(np.mean(values))))
            for pair, cosines in pairs:
                data.append(cosines)
                labels.append(f"{analysis['population']} {pair}")
        if not data:
            continue
        fig = Figure(figsize=(7, 0.28 * len(data) + 1.4))
        ax = fig.subplots()
        ax.boxplot(data, orientation="horizontal", tick_labels=labels, flierprops={"markersize": 2})
        for k, (population, mean) in enumerate(means):
            ax.axvline(mean, linestyle="--", color=f"C{k}", label=f"mean {population}")
        ax.axvline(0.0, color="grey", linewidth=0.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("cosine similarity of saliency maps")
        ax.legend(fontsize=7)
        title = f"Saliency similarity per pair, {experiment}".rstrip(", ")
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        name = f"saliency-{_slug(experiment or 'all')}.png"
        _save(fig, directory, name)
        out.append(FigureFile(name, title, "One box per submodel pair; dashed lines are the "
                              "population means (cf. Fig. 6)."))
    return out


def transfer_figures(records: list[dict], directory: Path) -> list[FigureFile]:
    """Heat map of acc(crafted on i -> scored on j) for each transfer record."""
    out = []
    for record in first_replicate(records):
        transfer = record.get("transfer")
        if not transfer or not transfer.get("matrix"):
            continue
        matrix = np.asarray(transfer["matrix"], dtype=float)
        fig = Figure(figsize=(4.2, 3.6))
        ax = fig.subplots()
        image = ax.imshow(100 * matrix, cmap="viridis", vmin=0, vmax=100)
        if matrix.shape[0] <= 10:
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    ax.text(j, i, f"{100 * matrix[i, j]:.0f}", ha="center", va="center",
                            fontsize=7, color="white" if matrix[i, j] < 0.6 else "black")
        ax.set_xlabel("scored on submodel j")
        ax.set_ylabel("crafted on submodel i")
        fig.colorbar(image, ax=ax, label="accuracy %")
        title = (f"{record['experiment']}/{record['population']} "
                 f"{ATTACK_LABELS.get(record['attack'], record['attack'])} "
                 f"ε={eps_text(float(record['eps']))}")
        ax.set_title(title, fontsize=8)
        fig.tight_layout()
        name = (f"transfer-{_slug(record['experiment'], record['population'], record['attack'])}"
                f"-eps{float(record['eps']):.6g}.png")
        _save(fig, directory, name)
        out.append(FigureFile(name, f"Transfer matrix, {title}",
                              "Diagonal: white-box on the crafting submodel; off-diagonal mean "
                              "is the transfer MRA."))
    return out


def mra_bar_figures(views: list[PaperTableView], directory: Path) -> list[FigureFile]:
    """Reproduced mean with its 95% interval as an error bar, next to the paper's MRA, for
    every table with a run."""
    out = []
    for view in views:
        cells = [(f"{ATTACK_LABELS[a]}\n{REGIME_LABELS[r]}", c)
                 for a, row, _ in view.rows for r, c in row.items()]
        if not any(c.run for _, c in cells):
            continue
        x = np.arange(len(cells))
        fig = Figure(figsize=(max(5.0, 0.55 * len(cells) + 1.5), 3.4))
        ax = fig.subplots()
        reproduced = [100 * c.mean if c.run else 0.0 for _, c in cells]
        # clipped at 0: an interval of zero width may end a rounding error inside its mean
        errors = np.clip(np.array([[100 * (c.mean - c.interval.low),
                                    100 * (c.interval.high - c.mean)]
                                   if c.run else [0.0, 0.0] for _, c in cells]).T, 0.0, None)
        paper = [100 * c.paper if c.paper is not None else 0.0 for _, c in cells]
        ax.bar(x - 0.2, reproduced, 0.4, yerr=errors, capsize=2, label="reproduced (95% CI)",
               color="C0")
        ax.bar(x + 0.2, paper, 0.4, label="paper", color="C1")
        for k, (_, c) in enumerate(cells):
            if not c.run:
                ax.text(x[k] - 0.2, 1, "not run", rotation=90, fontsize=6, va="bottom",
                        ha="center")
        ax.set_xticks(x, [label for label, _ in cells], fontsize=6)
        ax.set_ylabel("MRA %")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        title = f"Table {view.table.number} ({view.dataset}): reproduced vs paper"
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        name = f"mra-vs-paper-table{view.table.number}-{view.dataset}.png"
        _save(fig, directory, name)
        out.append(FigureFile(name, title, "Blue: reproduced mean over replicates, error bar "
                              f"its 95% interval ({methods_text(view_cells(view))}); "
                              "orange: the paper."))
    return out


def _cost_column(tables: list, experiment: str):
    """The table and column a cost figure plots: the strongest attack under the adaptive threat
    model when it ran, else adaptive PGD, else the paper protocol's PGD; None when none ran."""
    for threat, attack in (("adaptive", "strongest"), ("adaptive", "pgd"), ("paper", "pgd")):
        for table in tables:
            if table.experiment == experiment and table.threat_model == threat:
                columns = [c for c in table.columns if c[0] == attack]
                if columns:
                    return table, columns[0]
    return None


def seconds_axis(ax) -> None:
    """A log x axis for seconds labelled 10, 20, 50, 100, … as plain numbers: matplotlib's
    default labels every minor tick of a short log span as 3×10^1, 4×10^1, …, which overlap."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def cost_figures(tables: list, costs: list, directory: Path) -> list[FigureFile]:
    """MRA against measured training cost, one point per population (the Baselines section)."""
    out = []
    for experiment in sorted({t.experiment for t in tables}):
        found = _cost_column(tables, experiment)
        seconds = {c.population: c.total_seconds for c in costs if c.experiment == experiment}
        if found is None or not seconds:
            continue
        table, column = found
        points = [(pop, regime, seconds[pop], cells[column]) for pop, regime, cells in table.rows
                  if pop in seconds and cells[column].run]
        if not points:
            continue
        fig = Figure(figsize=(5.5, 3.6))
        ax = fig.subplots()
        for k, (pop, regime, cost, cell) in enumerate(points):
            err = [[max(0.0, 100 * (cell.mean - cell.interval.low))],
                   [max(0.0, 100 * (cell.interval.high - cell.mean))]]
            ax.errorbar([cost], [100 * cell.mean], yerr=err, fmt="o", capsize=3, color=f"C{k % 10}",
                        label=f"{pop} ({REGIME_LABELS.get(regime, regime)})")
        seconds_axis(ax)
        ax.set_xlabel("training seconds (measured, with the population it starts from)")
        attack = ATTACK_LABELS.get(column[0], column[0])
        ax.set_ylabel(f"MRA % ({attack}, ε {eps_text(column[1])}, {table.threat_model})")
        ax.legend(fontsize=7)
        title = f"{experiment}: robustness against training cost"
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        name = f"baselines-cost-{_slug(experiment)}.png"
        _save(fig, directory, name)
        out.append(FigureFile(name, title, "One point per population: mean MRA over replicates "
                              "with its 95% interval against the mean measured training time "
                              "(training.json wall_seconds; DVERGE and CLM include the ULM they "
                              "start from)."))
    return out
