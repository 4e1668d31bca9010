"""Stopping long computations at a safe point (SIGTERM from Slurm, a time limit, Ctrl-C).

The science never installs signal handlers (that is the steps' business, ``steps.common``);
it only accepts a ``should_stop`` callable.  A loop that sees ``should_stop()`` true saves
its resumable state and raises :class:`Interrupted` naming what it saved, so the step can
print one line and exit non-zero; rerunning the same job resumes from that state.
"""

from __future__ import annotations

from typing import Callable

StopCheck = Callable[[], bool]


class Interrupted(Exception):
    """A computation stopped at a safe point after a stop was requested.

    ``saved`` names the state that was written (a path, or a short description), so the
    user knows what a rerun will resume from."""

    def __init__(self, saved: str):
        super().__init__(f"stopped on request; state saved: {saved}")
        self.saved = saved


def never() -> bool:
    """The default ``should_stop``: run to the end."""
    return False
