"""The only place artifact paths are spelled (docs/architecture.md, "Artifact paths").

Replicates (issue 11): a spec with ``replicates: 1`` keeps the single-run layout
(``results/{spec}/{exp}/{pop}/...``) so existing results stay valid; with K >= 2 every
population folder gains ``r{r}/``.  Functions take ``replicate=None`` for the single-run layout
and an int for the replicate layout; ``layout_replicate(r, K)`` picks between them.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

# the layout's names (layer 0, so that runlock and calibration can use them too), re-exported
from clmrepro.layout import (  # noqa: F401
    ANALYSIS,
    COMPILED,
    RESULTS,
    RUN_LOCK,
    SCORES,
    STATE,
    TRAINING_RECORD,
)

CONFIG = f"{COMPILED}/config.yaml"
SCHEMA = "workflow/schemas/spec.schema.json"
DVC_YAML = "dvc.yaml"
# The data pipelines every compiled spec shares: one folder per prepared dataset, named so no
# spec can own it (spec names start with a letter or digit).  A spec's own dvc.yaml cannot hold
# the data stage: two compiled specs using one dataset would then declare the same output
# twice, and DVC refuses every command of such a project ("output ... is specified in ...").
DATA_PIPELINES = f"{COMPILED}/_data"
DEFAULT_DATA_ROOT = "data"


def format_eps(eps: float) -> str:
    """0.3 → '0.3', 8/255 → '0.0313725': short, stable, safe in a file name."""
    return f"{eps:.6g}"


def layout_replicate(replicate: int, replicates: int) -> int | None:
    """What the path functions take for replicate r of K: None (single-run layout) when K = 1."""
    return None if replicates == 1 else replicate


# the folder name ``r{r}`` that _replicate_suffix adds (group 1: r)
REPLICATE_FOLDER = re.compile(r"^r(\d+)$")


def _replicate_suffix(replicate: int | None) -> str:
    return "" if replicate is None else f"/r{replicate}"


def without_replicate(path: str) -> str:
    """``path`` with its replicate folder dropped: the replicates of one output map to one."""
    return "/".join(part for part in path.split("/") if not REPLICATE_FOLDER.match(part))


def compiled_dir(spec: str) -> str:
    """Everything `clmrepro compile` writes for one spec (docs/lab.md): removing this folder
    removes the spec's pipeline and nothing else."""
    return f"{COMPILED}/{spec}"


def plan_file(spec: str) -> str:
    return f"{COMPILED}/{spec}/plan.json"


def spec_dvc_yaml(spec: str) -> str:
    """The spec's own DVC pipeline (its dvc.lock lies beside it)."""
    return f"{COMPILED}/{spec}/dvc.yaml"


def jobs_dir(spec: str) -> str:
    return f"{COMPILED}/{spec}/jobs"


def job_file(spec: str, job: str) -> str:
    return f"{jobs_dir(spec)}/{job}.json"


def spec_results_dir(spec: str) -> str:
    """Every result, log and benchmark of one spec lies under this folder."""
    return f"{RESULTS}/{spec}"


def spec_state_dir(spec: str) -> str:
    """Every resumable state of one spec lies under this folder."""
    return f"{STATE}/{spec}"


def population_dir(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    return f"{RESULTS}/{spec}/{exp}/{pop}{_replicate_suffix(replicate)}"


def population(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    return f"{population_dir(spec, exp, pop, replicate)}/population.pt"


def training_record(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    return f"{population_dir(spec, exp, pop, replicate)}/{TRAINING_RECORD}"


def state_dir(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    """Resumable training state: never a declared output, so a failed job keeps it."""
    return f"{STATE}/{spec}/{exp}/{pop}{_replicate_suffix(replicate)}"


def _attack_state_name(attack: str, eps: float) -> str:
    return f"attack-{attack}-eps{format_eps(eps)}"


def attack_state_dir(spec: str, exp: str, pop: str, attack: str, eps: float,
                     replicate: int | None = None) -> str:
    """Resumable state of one attack job (crafted sets saved as they finish), beside its
    population's training state."""
    return f"{state_dir(spec, exp, pop, replicate)}/{_attack_state_name(attack, eps)}"


def state_dir_of(population_file: str, spec: str | None = None, exp: str | None = None,
                 pop: str | None = None) -> str:
    """The state folder of the population whose ``population.pt`` a job names (a train job's
    ``outputs.population``, an attack job's ``inputs.population``): the same folders under
    .clmrepro-state/ as under results/, so a replicate's ``r{r}/`` comes from the path and no
    step works the replicate out for itself.  A population outside the results/ layout (a
    hand-made job) keeps its state by ids, ``state_dir(spec, exp, pop)``, when they are given;
    without them that is an error."""
    folder = posixpath.dirname(population_file)
    prefix = f"{RESULTS}/"
    if folder.startswith(prefix):
        return f"{STATE}/{folder[len(prefix):]}"
    if spec is not None and exp is not None and pop is not None:
        return state_dir(spec, exp, pop)
    raise ValueError(f"not a population path of this layout: {population_file!r} "
                     f"(expected {RESULTS}/<spec>/<exp>/<pop>[/r<r>]/population.pt)")


def attack_state_dir_of(population_file: str, attack: str, eps: float, spec: str | None = None,
                        exp: str | None = None, pop: str | None = None) -> str:
    """``attack_state_dir`` from an attack job's ``inputs.population`` (``state_dir_of``)."""
    return f"{state_dir_of(population_file, spec, exp, pop)}/{_attack_state_name(attack, eps)}"


def average_state_dir(attack_state: str) -> str:
    """The state of an attack job's averaged-population set (the deterministic inference rules):
    a sibling of its attack state folder, not a child (a chunk store removes whatever else its
    folder holds)."""
    return f"{attack_state}-average"


def adversarial(spec: str, exp: str, pop: str, attack: str, eps: float,
                replicate: int | None = None) -> str:
    return (f"{population_dir(spec, exp, pop, replicate)}/attacks/{attack}-eps{format_eps(eps)}"
            "/adversarial.pt")


def scores(spec: str, exp: str, pop: str, attack: str, eps: float,
           replicate: int | None = None) -> str:
    return f"{population_dir(spec, exp, pop, replicate)}/{SCORES}/{attack}-eps{format_eps(eps)}.json"


def benign_scores(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    return f"{population_dir(spec, exp, pop, replicate)}/{SCORES}/benign.json"


def analysis(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    return f"{population_dir(spec, exp, pop, replicate)}/{ANALYSIS}"


def sanity(spec: str, exp: str, pop: str, replicate: int | None = None) -> str:
    """The checks that catch a failed attack (docs/sanity.md), one file per population."""
    return f"{population_dir(spec, exp, pop, replicate)}/sanity.json"


def log(spec: str, job: str) -> str:
    return f"{RESULTS}/{spec}/logs/{job}.log"


def benchmark(spec: str, job: str) -> str:
    return f"{RESULTS}/{spec}/benchmarks/{job}.tsv"


def data_root(root: str) -> str:
    """A dataset root as the shared data job writes it: ``data/`` and ``./data`` are ``data``."""
    return posixpath.normpath(root)


def data_key(name: str, root: str) -> str:
    """The shared data pipeline of dataset ``name`` under ``root``: the name for the default
    root, else the name and 8 hex digits of the root (two roots never share a pipeline)."""
    root = data_root(root)  # data/ and ./data are data: one prepared file, one job
    if root == DEFAULT_DATA_ROOT:
        return name
    return f"{name}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"


def data_job_id(name: str) -> str:
    return f"data-{name}"


def data_pipeline_dir(name: str, root: str) -> str:
    """The job file, dvc.yaml and dvc.lock of one dataset's data stage."""
    return f"{DATA_PIPELINES}/{data_key(name, root)}"


def data_job_file(name: str, root: str) -> str:
    return f"{data_pipeline_dir(name, root)}/job.json"


def data_dvc_yaml(name: str, root: str) -> str:
    return f"{data_pipeline_dir(name, root)}/dvc.yaml"


def data_log(name: str, root: str) -> str:
    return f"{RESULTS}/_data/logs/{data_key(name, root)}.log"


def data_benchmark(name: str, root: str) -> str:
    return f"{RESULTS}/_data/benchmarks/{data_key(name, root)}.tsv"


def prepared_data(name: str, root: str) -> str:
    """The decoded dataset every job of the spec reads (written by the data job)."""
    return posixpath.normpath(posixpath.join(root, "prepared", f"{name}.pt"))


def prepared_manifest(name: str, root: str) -> str:
    """Where the prepared data came from: source files, versions, its own sha256."""
    return posixpath.normpath(posixpath.join(root, "prepared", f"{name}.manifest.json"))


def data_outputs(name: str, root: str) -> dict[str, str]:
    return {"data": prepared_data(name, root), "manifest": prepared_manifest(name, root)}


def inside_repository(path: str) -> bool:
    """A relative path that stays inside the checkout (DVC 3 caches nothing outside it)."""
    normal = posixpath.normpath(path)
    return not posixpath.isabs(normal) and normal != ".." and not normal.startswith("../")


def report_dir(spec: str) -> str:
    return f"reports/{spec}"


def report_outputs(spec: str) -> dict[str, str]:
    base = report_dir(spec)
    return {"metrics": f"{base}/metrics.json", "report_md": f"{base}/report.md",
            "report_html": f"{base}/report.html", "mra_csv": f"{base}/mra.csv",
            "figures": f"{base}/figures",
            # DVC's views (clmrepro.reporting.dvc_metrics): `dvc metrics` and `dvc plots`
            "dvc_metrics": f"{base}/dvc_metrics.json", "mra_by_attack": f"{base}/mra_by_attack.csv",
            # every number's per-image results (clmrepro.reporting.per_image_file)
            "per_image": f"{base}/per_image.csv.gz"}
