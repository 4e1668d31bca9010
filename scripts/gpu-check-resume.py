"""scripts/gpu-check.sh part `resume`: kill and resume on the check's device.

The spec's ResNet18 training job (else its first training job), 3 epochs, saving after every
minibatch (CLMREPRO_STATE_EVERY_S=0): once uninterrupted, once SIGKILLed just after its first
saved state and run again.  On one device the resumed weights must equal the uninterrupted
ones bit for bit (core.training.state).  Prints one JSON line; exit 1 when they differ.

usage: python scripts/gpu-check-resume.py WORK NAME   (WORK: the check's compiled scratch copy)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch


def tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from tensors(value, f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from tensors(value, f"{prefix}/{index}")


def main(work: Path, name: str) -> int:
    jobs = sorted((work / "workflow" / "compiled" / name / "jobs").glob("train-*.json"))
    job = json.loads(next((p for p in jobs if "cifar" in p.name), jobs[0]).read_text())
    job["params"]["training"]["epochs"] = 3
    env = {**os.environ, "CLMREPRO_STATE_EVERY_S": "0"}
    state = work / ".clmrepro-state"

    def copy(tag: str) -> tuple[dict, list[str]]:
        mine = json.loads(json.dumps(job))
        mine["id"] = f"resume-check-{tag}"
        mine["outputs"] = {key: str(work / "resume" / tag / Path(value).name)
                           for key, value in mine["outputs"].items()}
        path = work / "resume" / f"{tag}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine))
        return mine, [sys.executable, "-m", "clmrepro.steps.train", str(path)]

    whole, command = copy("whole")
    if subprocess.run(command, cwd=work, env=env).returncode != 0:
        return 1
    before = set(state.rglob("last.pt")) if state.is_dir() else set()
    cut, command = copy("cut")
    child = subprocess.Popen(command, cwd=work, env=env)
    killed, deadline = False, time.time() + 300
    while child.poll() is None and time.time() < deadline:
        if state.is_dir() and set(state.rglob("last.pt")) - before:
            child.send_signal(signal.SIGKILL)       # mid-epoch, after its first saved state
            killed = True
            break
        time.sleep(0.005)
    child.wait()
    if subprocess.run(command, cwd=work, env=env).returncode != 0:
        return 1
    a = dict(tensors(torch.load(whole["outputs"]["population"], map_location="cpu",
                                weights_only=False)))
    b = dict(tensors(torch.load(cut["outputs"]["population"], map_location="cpu",
                                weights_only=False)))
    differ = [key for key in a if key not in b or not torch.equal(a[key], b[key])]
    print(json.dumps({"job": job["id"], "killed_after_a_saved_state": killed, "tensors": len(a),
                      "differ": differ[:20], "identical": killed and not differ}))
    return 0 if killed and not differ else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
