"""Fixtures for the tests that need a real one-node Slurm cluster (``make slurm-test``).

These tests run only when the marker expression names them (``pytest -m slurm``, which
mk/slurm.mk uses after starting the cluster); a plain ``pytest`` deselects them and says so,
because without root and the cluster they cannot run.  Once selected, a missing or unhealthy
cluster is a FAILURE with a plain message, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config, items):
    if "slurm" in (config.option.markexpr or ""):
        return
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"tests/slurm: {len(mine)} test(s) need a real Slurm cluster and were deselected; "
                "run them with `make slurm-test` (as root)")


@pytest.fixture(scope="session")
def job_env() -> dict[str, str]:
    """The submitting environment, venv first: sbatch exports it to the jobs (--export=ALL),
    so `python -m clmrepro...` and `python -m snakemake` inside a job use the same venv."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The name of the idle node of the running test cluster; fail plainly if there is none."""
    if shutil.which("sinfo") is None:
        pytest.fail("Slurm is not installed here (no `sinfo` on PATH): start the one-node "
                    "cluster with `make slurm-test` as root (scripts/slurm/start-cluster.sh)",
                    pytrace=False)
    result = subprocess.run(["sinfo", "-h", "-o", "%n %T"], capture_output=True, text=True,
                            timeout=30)
    nodes = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    ready = [name for name, state in nodes.items() if state in ("idle", "mixed")]
    if result.returncode != 0 or not ready:
        pytest.fail("no idle Slurm node: `sinfo` said "
                    f"{(result.stdout + result.stderr).strip()!r} (exit {result.returncode}); "
                    "start the cluster with scripts/slurm/start-cluster.sh", pytrace=False)
    return ready[0]


def copy_repo(target: Path) -> Path:
    """The working tree's tracked and not-ignored files (no results, data, venv): a clean
    checkout as CI would see it, so each run starts with nothing computed.  Not-ignored new
    files count too: `python -m clmrepro...` run in the copy imports the copy's package."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True)
    for name in listing.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture
def fresh_repo():
    """copy_repo as a fixture (test modules here do not import conftest)."""
    return copy_repo
