"""The names the artifact layout is built from (layer 0: no imports from clmrepro).

``clmrepro.plan.paths`` composes every artifact path from these names and re-exports them; the
names live here, below every layer, so that the run lock (which the Snakefile imports before any
plan) and calibration (a layer below plan) can name a folder without spelling it a second time.
Nothing but plan/paths.py composes a path from them (tests/unit/test_paths_spelled_once.py).
"""

from __future__ import annotations

STATE = ".clmrepro-state"          # resumable state, never an output (docs/reliability.md)
RESULTS = "results"                # every result, log and benchmark of every spec
COMPILED = "workflow/compiled"     # what `clmrepro compile` writes, one folder per spec
SCORES = "scores"                  # a population's scores folder: one JSON per (attack, eps)
TRAINING_RECORD = "training.json"  # a population's training record
ANALYSIS = "analysis.json"         # a population's benign analysis
RUN_LOCK = f"{STATE}/run.lock"     # the checkout's run lock (clmrepro.runlock)
