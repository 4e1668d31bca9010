"""The same small spec, run locally and through a real Slurm cluster, gives the same metrics.

Needs the one-node cluster that `make slurm-test` starts (scripts/slurm/start-cluster.sh).
Both runs start from a fresh copy of the repository; the Slurm run uses the shipped profile
(workflow/profiles/slurm) with only the settings its docs call user settings overridden for
this cluster: no accounting (status by squeue), no accounts, partition `debug`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clmrepro.compiled import SpecJob

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Device cpu: the test node has no GPU, and a GPU request would wait forever.
SPEC = "tests/slurm/slurm-tiny.yaml"
# The settings a user of a cluster without accounting would pass (docs/cluster.md).
# init-seconds 1: the plugin's default waits 40 s before the first status query, which is
# most of this test's time on a cluster that starts jobs at once.
SLURM_OVERRIDES = [
    "--slurm-status-command", "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
    "--default-resources", "slurm_partition=debug",
    "--latency-wait", "10",
    "--retries", "0",
]


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"`{' '.join(cmd)}` failed in {cwd} (exit {result.returncode}):\n{output[-6000:]}")
    return seconds, output


def compiled_cpu_copy(target: Path, fresh_repo, env: dict) -> tuple[Path, dict]:
    """A fresh repository copy with the test spec compiled to CPU jobs only."""
    fresh_repo(target)
    run([str(VENV_BIN / "clmrepro"), "compile", SPEC], target, env)
    name = yaml.safe_load((target / SPEC).read_text())["name"]
    plan = json.loads((target / f"workflow/compiled/{name}/plan.json").read_text())
    gpu_jobs = [job["job"]["id"] for job in plan["jobs"] if job["resources"]["gpu"]]
    assert not gpu_jobs, f"{SPEC} must compile to CPU jobs only; GPU jobs: {gpu_jobs}"
    return target, plan


def metrics_path(plan: dict) -> str:
    report = next(job for job in plan["jobs"] if job["job"]["stage"] == "report")
    return report["job"]["outputs"]["metrics"]


def test_slurm_run_gives_the_local_run_metrics(slurm_cluster, tmp_path, fresh_repo, job_env):
    load_before = os.getloadavg()[0]
    local, plan = compiled_cpu_copy(tmp_path / "local", fresh_repo, job_env)
    cluster, _ = compiled_cpu_copy(tmp_path / "slurm", fresh_repo, job_env)
    snakemake = str(VENV_BIN / "snakemake")

    # only this spec (the copy also holds the committed demo spec's plan)
    only = ["--config", f"spec={plan['spec']}"]
    local_s, _ = run([snakemake, "--cores", "2", *only], local, job_env)
    slurm_s, slurm_log = run(
        [snakemake, "--profile", "workflow/profiles/slurm", *SLURM_OVERRIDES, *only], cluster,
        job_env)

    # Every job went through sbatch: the plugin keeps one log per Slurm job and rule.
    slurm_logs = sorted(path for path in (cluster / ".snakemake/slurm_logs").rglob("*.log"))
    submitted_rules = {path.relative_to(cluster / ".snakemake/slurm_logs").parts[0]
                       for path in slurm_logs}
    # Rule names come from clmrepro.compiled.SpecJob. Data jobs are local rules
    # (workflow/rules/jobs.smk, a localrule by stage): they fetch on the submit host, which has the network, so
    # they must not reach sbatch; every other job must.
    rules = {job["job"]["id"]: SpecJob.from_dict(job).rule_name for job in plan["jobs"]}
    data_ids = [job["job"]["id"] for job in plan["jobs"] if job["job"]["stage"] == "data"]
    assert data_ids, f"{SPEC} plans no data job; this test checks that data jobs stay local"
    expected_rules = {"rule_" + rule for job_id, rule in rules.items() if job_id not in data_ids}
    assert submitted_rules == expected_rules, slurm_log[-4000:]
    for job_id in data_ids:
        assert f"localrule {rules[job_id]}:" in slurm_log, (
            f"data job {job_id} did not run on the submit host:\n{slurm_log[-4000:]}")

    metrics = metrics_path(plan)
    local_bytes = (local / metrics).read_bytes()
    slurm_bytes = (cluster / metrics).read_bytes()
    assert json.loads(local_bytes)["records"], "the local run's metrics.json has no records"
    assert slurm_bytes == local_bytes, f"{metrics} differs between the local and the Slurm run"

    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "slurm-timing.json").write_text(json.dumps({
        "spec": plan["spec_path"],
        "jobs": len(plan["jobs"]),
        "node": slurm_cluster,
        "local_wall_s": round(local_s, 1),
        "slurm_wall_s": round(slurm_s, 1),
        "slurm_added_s": round(slurm_s - local_s, 1),
        "metrics_identical": True,
        # Timings on a shared 2-core machine depend on what else runs: keep the load with them.
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "slurm_status_checks": "squeue, first after 1 s, then every 1 s + 10 s per idle check",
    }, indent=2, sort_keys=True) + "\n")
