"""The only place artifact paths are spelled (docs/architecture.md, "Artifact paths")."""

from __future__ import annotations

COMPILED = "workflow/compiled"
CONFIG = f"{COMPILED}/config.yaml"
SCHEMA = "workflow/schemas/spec.schema.json"
DVC_YAML = "dvc.yaml"


def format_eps(eps: float) -> str:
    """0.3 → '0.3', 8/255 → '0.0313725': short, stable, safe in a file name."""
    return f"{eps:.6g}"


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
    return f"results/{spec}"


def spec_state_dir(spec: str) -> str:
    """Every resumable training state of one spec lies under this folder."""
    return f".clmrepro-state/{spec}"


def population_dir(spec: str, exp: str, pop: str) -> str:
    return f"results/{spec}/{exp}/{pop}"


def population(spec: str, exp: str, pop: str) -> str:
    return f"{population_dir(spec, exp, pop)}/population.pt"


def training_record(spec: str, exp: str, pop: str) -> str:
    return f"{population_dir(spec, exp, pop)}/training.json"


def state_dir(spec: str, exp: str, pop: str) -> str:
    """Resumable training state: never a declared output, so a failed job keeps it."""
    return f".clmrepro-state/{spec}/{exp}/{pop}"


def adversarial(spec: str, exp: str, pop: str, attack: str, eps: float) -> str:
    return f"{population_dir(spec, exp, pop)}/attacks/{attack}-eps{format_eps(eps)}/adversarial.pt"


def scores(spec: str, exp: str, pop: str, attack: str, eps: float) -> str:
    return f"{population_dir(spec, exp, pop)}/scores/{attack}-eps{format_eps(eps)}.json"


def benign_scores(spec: str, exp: str, pop: str) -> str:
    return f"{population_dir(spec, exp, pop)}/scores/benign.json"


def analysis(spec: str, exp: str, pop: str) -> str:
    return f"{population_dir(spec, exp, pop)}/analysis.json"


def log(spec: str, job: str) -> str:
    return f"results/{spec}/logs/{job}.log"


def benchmark(spec: str, job: str) -> str:
    return f"results/{spec}/benchmarks/{job}.tsv"


def report_dir(spec: str) -> str:
    return f"reports/{spec}"


def report_outputs(spec: str) -> dict[str, str]:
    base = report_dir(spec)
    return {"metrics": f"{base}/metrics.json", "report_md": f"{base}/report.md",
            "report_html": f"{base}/report.html", "mra_csv": f"{base}/mra.csv",
            "figures": f"{base}/figures",
            # DVC's views (clmrepro.reporting.dvc_metrics): `dvc metrics` and `dvc plots`
            "dvc_metrics": f"{base}/dvc_metrics.json", "mra_by_attack": f"{base}/mra_by_attack.csv"}
