"""Measured unit costs of this machine, for the plan's time estimates (issue 10).

``clmrepro calibrate`` (``run.py``) measures, in about two minutes, what one image costs per
training step, forward pass and input-gradient step for each architecture, precision and
memory format, what each attack costs per image on a trained model (AutoAttack as a function
of how many points survive APGD-CE), and how long a job takes to start.  It writes a small
JSON file (``files.py`` defines and reads it, without torch); ``clmrepro.plan.estimate``
turns it into seconds per job.  Shipped calibrations live in ``calibration/*.json`` at the
repository root.  Only ``files`` may be imported by ``clmrepro.plan``: the other modules
import torch.  The package imports ``core`` and nothing above it: the steps' start-up and
the report's work are timed in child processes that load them by name (``startup.py``).
"""
