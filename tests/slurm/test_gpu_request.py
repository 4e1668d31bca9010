"""A GPU job's Slurm submission asks for one GPU; a CPU job's asks for none.

The plan of tests/slurm/slurm-tiny.yaml compiled with `device: auto` has GPU jobs (train, attack,
evaluate: gpu=1) and one CPU job (report: gpu=0).  Snakemake runs it with the shipped Slurm
profile, but `sbatch` on PATH is a recorder: it keeps the exact command line the plugin built,
asks the real Slurm whether it would accept it (`sbatch --test-only`), and refuses the job so
nothing runs.  The test node has no GPU, so the real Slurm must reject the GPU request: that
shows the request is a GPU request for Slurm, not only a string.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

VENV_BIN = Path(sys.executable).parent
# The test cluster's user settings (docs/cluster.md); init-seconds 1 because after a failed
# submission the plugin otherwise sleeps the default 40 s before Snakemake can exit.
SLURM_OVERRIDES = [
    "--slurm-status-command", "squeue", "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "1",
    "--default-resources", "slurm_partition=debug", "--retries", "0",
]

RECORDER = """#!{python}
# Records the plugin's sbatch call, asks the real sbatch with --test-only, refuses the job.
import json, subprocess, sys
args = sys.argv[1:]
check = subprocess.run([{sbatch!r}, "--test-only"] + [a for a in args if a != "--parsable"],
                       capture_output=True, text=True)
with open({record!r}, "a") as out:
    out.write(json.dumps({{"argv": args, "test_only_rc": check.returncode,
                          "test_only": check.stdout + check.stderr}}) + "\\n")
print("clmrepro test recorder: submission recorded, job not run", file=sys.stderr)
sys.exit(1)
"""


def option_value(argv: list[str], name: str) -> str | None:
    """The value of `name` in sbatch's argv, given as `name=V` or `name V`."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@pytest.fixture
def auto_plan(tmp_path, fresh_repo, job_env):
    repo = fresh_repo(tmp_path / "repo")
    spec = yaml.safe_load((repo / "tests/slurm/slurm-tiny.yaml").read_text())
    (repo / "specs/slurm-tiny-auto.yaml").write_text(yaml.safe_dump({**spec, "name": "slurm-tiny-auto", "device": "auto"}))
    subprocess.run([str(VENV_BIN / "clmrepro"), "compile", "specs/slurm-tiny-auto.yaml"],
                   cwd=repo, env=job_env, check=True, capture_output=True)
    plan = json.loads((repo / "workflow/compiled/slurm-tiny-auto/plan.json").read_text())
    return repo, {job["job"]["id"]: job for job in plan["jobs"]}


def submit_recorded(repo: Path, env: dict, tmp_path: Path) -> list[dict]:
    """Run the workflow through the Slurm profile with the recording sbatch; return its
    records (one per submission attempted before Snakemake gave up)."""
    sbatch = shutil.which("sbatch", path=env["PATH"])
    assert sbatch, "no sbatch on PATH: is Slurm installed (make slurm-test)?"
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    record = tmp_path / "sbatch-calls.jsonl"
    record.unlink(missing_ok=True)
    recorder = shims / "sbatch"
    recorder.write_text(RECORDER.format(python=sys.executable, sbatch=sbatch, record=str(record)))
    recorder.chmod(0o755)
    env = {**env, "PATH": f"{shims}{os.pathsep}{env['PATH']}"}
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "--profile", "workflow/profiles/slurm", *SLURM_OVERRIDES,
         "--config", "spec=slurm-tiny-auto"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    # The recorder refuses every job, so Snakemake must report failure.
    assert result.returncode != 0, result.stdout + result.stderr
    assert record.exists(), "the plugin never called sbatch:\n" + result.stderr[-4000:]
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_gpu_job_asks_for_one_gpu(slurm_cluster, auto_plan, job_env, tmp_path):
    repo, jobs = auto_plan
    assert jobs["train-mnist-ulm"]["resources"]["gpu"] == 1
    # Only the first job of the chain is ready: the GPU training job.
    (call,) = submit_recorded(repo, job_env, tmp_path)
    argv = call["argv"]
    assert option_value(argv, "--comment") == "rule_job_slurm_tiny_auto__train_mnist_ulm"
    assert option_value(argv, "--gpus") == "1"
    assert option_value(argv, "--mem") == str(jobs["train-mnist-ulm"]["resources"]["mem_mb"])
    assert option_value(argv, "-t") == str(jobs["train-mnist-ulm"]["resources"]["runtime"])
    assert option_value(argv, "--cpus-per-task") == str(
        jobs["train-mnist-ulm"]["resources"]["threads"])
    # The GPU-less test node cannot satisfy it: Slurm read it as a GPU (gres) request.
    assert call["test_only_rc"] != 0 and "gres" in call["test_only"], call["test_only"]


def test_cpu_job_asks_for_no_gpu(slurm_cluster, auto_plan, job_env, tmp_path):
    repo, jobs = auto_plan
    report = jobs["report"]
    assert report["resources"]["gpu"] == 0
    # Stand-ins for every other job's outputs, newer than the job files: only the CPU
    # report job is left to submit.
    for job_id, job in jobs.items():
        if job_id != "report":
            for name, path in job["job"]["outputs"].items():
                (repo / path).parent.mkdir(parents=True, exist_ok=True)
                (repo / path).touch()
    (call,) = submit_recorded(repo, job_env, tmp_path)
    argv = call["argv"]
    assert option_value(argv, "--comment") == "rule_job_slurm_tiny_auto__report"
    assert not any(arg.startswith(("--gpus", "--gres", "--gpus-per")) for arg in argv), (
        shlex.join(argv))
    assert option_value(argv, "--cpus-per-task") == str(report["resources"]["threads"])
    assert option_value(argv, "--mem") == str(report["resources"]["mem_mb"])
    # And the real Slurm would run it on this node.
    assert call["test_only_rc"] == 0, call["test_only"]
