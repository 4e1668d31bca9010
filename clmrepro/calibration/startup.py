"""What a job costs before and around its work: a fresh Python process that imports what the
step imports and loads the data stage's prepared file; and the report step's cost per input file.

Measured from outside with a subprocess, as Snakemake runs a job (issue 10: on a loaded
machine one process took 16 s to import torch + torchattacks; the benchmark files of
Snakemake count that time).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPORT_FIXTURES = REPO / "tests" / "unit" / "reporting" / "fixtures"
# What each step's process imports before its work (a module missing in this version is
# skipped).  Named, not imported: they are loaded only in the child process being timed.
STEP_IMPORTS = {
    "train": ["clmrepro.steps.train", "clmrepro.core.training.loop", "clmrepro.core.checkpoints",
              "clmrepro.steps.population"],
    "attack": ["clmrepro.steps.attack", "clmrepro.core.attacks.threats",
               "clmrepro.core.attacks.sequential", "clmrepro.core.metrics",
               "clmrepro.steps.population"],
    "evaluate": ["clmrepro.steps.evaluate", "clmrepro.core.metrics", "clmrepro.core.saliency",
                 "clmrepro.core.attacks.kinds", "clmrepro.steps.population"],
    "report": ["clmrepro.steps.report", "clmrepro.reporting.figures", "matplotlib.pyplot"],
}
DEFAULT_REPORT_S_PER_INPUT = 0.04
DEFAULT_REPORT_S_FIXED = 1.0

_SCRIPT = """
import importlib, sys
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
import torch
from clmrepro.core.devices import prepare_torch  # what every step does first
prepare_torch({threads}, "cuda" if {cuda!r} else "cpu")
if {cuda!r}:
    torch.zeros(1, device="cuda")  # the CUDA context every GPU job creates
if {prepared!r}:  # what every job reads (docs/data.md)
    from clmrepro.core.data import load_prepared
    load_prepared({prepared!r}, {dataset!r}, n_train=10, n_test=10)
elif {dataset!r}:
    from clmrepro.core.data import load_dataset
    load_dataset({dataset!r}, {root!r}, n_train=10, n_test=10)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(command: list[str], cpu_clock: bool = False, **kwargs):
    """(completed process, seconds): wall seconds, or the child's CPU seconds."""
    wall, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=_env(), **kwargs)
    seconds = (_children_cpu() - cpu) if cpu_clock else (time.perf_counter() - wall)
    return done, seconds


def process_seconds(stage: str, *, threads: int = 1, dataset: str | None = "mnist-5k",
                    root: str = "data", cpu_clock: bool = False, cuda: bool = False,
                    prepared: str | None = None) -> float:
    """Seconds of a fresh interpreter that imports ``stage``'s modules (and loads
    ``dataset`` from its ``prepared`` file, else decodes it, and creates the CUDA context,
    except for the report)."""
    report = stage == "report"
    code = _SCRIPT.format(modules=STEP_IMPORTS[stage], threads=threads,
                          dataset=None if report else dataset, root=root,
                          prepared=None if report else prepared, cuda=cuda and not report)
    done, seconds = run_timed([sys.executable, "-c", code], cpu_clock,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done.check_returncode()
    return seconds


def startup_seconds(*, threads: int = 1, dataset: str | None = "mnist-5k",
                    root: str = "data", cpu_clock: bool = False,
                    cuda: bool = False) -> dict[str, float]:
    """Start-up seconds per stage (the caller has loaded torch and the dataset once, so the
    files are in the page cache, as for all but the first job of a run).  The dataset is
    prepared once into a temporary folder, as its data job would, and each process reads it."""
    from clmrepro.core.data import DatasetUnavailable
    from clmrepro.core.prepare import PREPARABLE, prepare_dataset

    with tempfile.TemporaryDirectory() as folder:
        prepared = None
        if dataset in PREPARABLE:
            try:
                prepare_dataset(dataset, root, Path(folder) / f"{dataset}.pt",
                                Path(folder) / f"{dataset}.manifest.json")
                prepared = str(Path(folder) / f"{dataset}.pt")
            except DatasetUnavailable:
                pass  # measured decoding from the files instead
        return {stage: round(process_seconds(stage, threads=threads, dataset=dataset,
                                             root=root, cpu_clock=cpu_clock, cuda=cuda,
                                             prepared=prepared), 3)
                for stage in STEP_IMPORTS}


def _report_job(root: Path, share: float = 1.0) -> dict:
    results = root / "results" / "fixture"
    shutil.copytree(REPORT_FIXTURES / "results", root / "results")
    shutil.copy(REPORT_FIXTURES / "spec.yaml", root / "spec.yaml")
    shutil.copy(REPO / "specs" / "paper_tables.yaml", root / "paper_tables.yaml")

    def rel(pattern: str) -> list[str]:
        found = sorted(str(p.relative_to(root)) for p in results.glob(pattern))
        return found[:max(1, round(len(found) * share))] if found else found

    out = "reports/fixture"
    return {"id": "report", "stage": "report", "spec": "fixture", "seed": 7, "threads": 1,
            "device": "cpu", "gpu": False,
            "inputs": {"scores": rel("*/*/scores/*.json") or rel("*/scores/*.json"),
                       "records": rel("*/*/training.json") or rel("*/training.json"),
                       "analyses": rel("*/*/analysis.json") or rel("*/analysis.json"),
                       "paper_tables": "paper_tables.yaml", "spec": "spec.yaml"},
            "outputs": {"metrics": f"{out}/metrics.json", "mra_csv": f"{out}/mra.csv",
                        "report_md": f"{out}/report.md", "report_html": f"{out}/report.html",
                        "figures": f"{out}/figures"},
            "params": {"spec_name": "fixture", "description": "calibration", "seed": 7,
                       "spec_sha256": "calibration", "device": "cpu", "departures": []}}


_REPORT_WORK = """
import json, sys, time
from clmrepro.reporting.build import build_report
job = json.load(open("job.json"))
clock = time.process_time if {cpu_clock!r} else time.perf_counter
start = clock()
build_report(job)
print(clock() - start)
"""


def report_seconds(cpu_clock: bool = False) -> tuple[float, float, str]:
    """The report step's work (after its imports) as a fixed part plus a part per input file
    (scores, training record, analysis): two real runs on the repository's report fixtures, all
    of them and a third of them, fitted with a line.  Per file rather than per record: most of
    the per-input work is one figure per scores file; the fixed part is the paper tables,
    matplotlib and the templates.  (fixed, per input, reason); defaults when the fixtures are
    absent or a run fails."""
    if not REPORT_FIXTURES.is_dir():
        return (DEFAULT_REPORT_S_FIXED, DEFAULT_REPORT_S_PER_INPUT,
                "report fixtures not found; built-in report cost")
    runs = []
    for share in (1.0, 1 / 3):
        with tempfile.TemporaryDirectory(prefix="clmrepro-calibrate-") as tmp:
            root = Path(tmp)
            job = _report_job(root, share)
            (root / "job.json").write_text(json.dumps(job))
            inputs = sum(len(job["inputs"][k]) for k in ("scores", "records", "analyses"))
            done = subprocess.run([sys.executable, "-c",
                                   _REPORT_WORK.format(cpu_clock=cpu_clock)],
                                  cwd=root, env=_env(), capture_output=True, text=True)
        try:
            runs.append((inputs, float(done.stdout.strip().splitlines()[-1])))
        except (IndexError, ValueError):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return (DEFAULT_REPORT_S_FIXED, DEFAULT_REPORT_S_PER_INPUT,
                    f"report step failed on the fixtures ({last}); built-in report cost")
    (n_all, t_all), (n_few, t_few) = runs
    per_input = max(0.0, (t_all - t_few) / max(n_all - n_few, 1))
    fixed = max(0.0, t_few - per_input * n_few)
    return fixed, per_input, (f"fixture report: {n_all} input files {t_all:.2f} s, {n_few} "
                              f"input files {t_few:.2f} s of work")
