"""A stand-in for a long step, for the signal tests only: ``python -m fake_long_step JOB.json``.

It counts to ``total`` one tick at a time, through the real ``step_main``; its knobs are in
the JSON file ``inputs.knobs`` (the job itself is a complete train job).  Modes:
``cooperative`` checks ``stop_requested()`` every tick, saves its count and raises
``Interrupted`` (what core's training and attack loops do); ``stubborn`` never checks (a loop
without a safe point); ``slow-save`` takes a minute to "save" once stopped.  A rerun resumes
from the saved count.  ``started`` is written after the first tick so the test knows
the loop runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from clmrepro.core.checkpoints import atomic_write_json, atomic_write_text
from clmrepro.core.interrupt import Interrupted
from clmrepro.steps.common import Job, step_main, stop_requested


def run_fake(job: Job) -> None:
    p = json.loads(Path(job["inputs"]["knobs"]).read_text())
    state, started = Path(p["state"]), Path(p["started"])
    count = int(state.read_text()) if state.exists() else 0
    resumed_from = count
    while count < int(p["total"]):
        if p["mode"] != "stubborn" and stop_requested():
            if p["mode"] == "slow-save":
                time.sleep(60)
            atomic_write_text(state, str(count))
            raise Interrupted(saved=f"{state} (tick {count})")
        time.sleep(float(p["tick"]))
        count += 1
        if not started.exists():
            started.write_text("running\n")
    atomic_write_json(job["outputs"]["count"], {"count": count, "resumed_from": resumed_from})
    state.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(step_main(run_fake))
