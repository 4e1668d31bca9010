"""Report step: merge every scores file, compare with the paper, render the reports.

``python -m clmrepro.steps.report JOB.json``; the work is ``clmrepro.reporting.build``.
"""

from __future__ import annotations

from clmrepro.reporting.build import build_report
from clmrepro.steps.common import Job, step_main


def run_report(job: Job) -> None:
    build_report(job)


def main(argv: list[str] | None = None) -> int:
    return step_main(run_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
