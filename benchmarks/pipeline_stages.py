"""Plan vs measured, per stage: the plan's estimates against Snakemake's benchmark files.

    .venv/bin/python -m benchmarks.pipeline_stages workflow/compiled/smoke/plan.json \
        [--calibration calibration/cpu-2core.json] [--column s] [--append BENCHMARKS.md]

Reads a compiled plan (``workflow/compiled/<spec>/plan.json``) and, for every job, the
benchmark file Snakemake wrote (``results/<spec>/benchmarks/<job>.tsv``; column ``s`` is
the job's wall seconds, ``cpu_time`` its CPU seconds, sampled by Snakemake).  Prints, per
stage, the jobs found, the measured seconds (sum), the planned seconds (sum of the same
jobs' estimates) and planned / measured.  The goal (issue 10) is a ratio within 0.7–1.3 for
every stage.  ``--calibration`` re-estimates the jobs with another calibration instead of
the estimates stored in the plan.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import sys
from pathlib import Path

from clmrepro.plan.model import load_plan

STAGES = ("data", "train", "retrain", "attack", "evaluate", "report")
GOAL = (0.7, 1.3)


def read_benchmark(path: Path, column: str = "s") -> float | None:
    """The mean of ``column`` over the file's rows (Snakemake writes one row per repeat);
    None when the file is missing or the value is NA."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    values = []
    for row in rows:
        try:
            values.append(float(row[column]))
        except (KeyError, TypeError, ValueError):
            continue
    return sum(values) / len(values) if values else None


def compare(plan_path: Path, root: Path = Path("."), column: str = "s",
            calibration: dict | None = None) -> list[dict]:
    """One row per stage (and a total): jobs, measured, planned, ratio planned/measured."""
    from clmrepro.plan.estimate import estimate_seconds

    plan = load_plan(plan_path)
    rows = []
    for stage in [s for s in STAGES if plan.stage(s)]:
        jobs = plan.stage(stage)
        measured = planned = 0.0
        found = 0
        for job in jobs:
            seconds = read_benchmark(root / job.benchmark, column)
            if seconds is None:
                continue
            found += 1
            measured += seconds
            planned += (estimate_seconds(job.job, calibration) if calibration is not None
                        else job.estimate_s)
        rows.append({"stage": stage, "jobs": len(jobs), "measured_jobs": found,
                     "measured_s": measured, "planned_s": planned,
                     "ratio": planned / measured if measured > 0 else None})
    measured = sum(r["measured_s"] for r in rows)
    planned = sum(r["planned_s"] for r in rows)
    rows.append({"stage": "total", "jobs": sum(r["jobs"] for r in rows),
                 "measured_jobs": sum(r["measured_jobs"] for r in rows), "measured_s": measured,
                 "planned_s": planned, "ratio": planned / measured if measured > 0 else None})
    return rows


def _ratio(row: dict) -> str:
    if row["ratio"] is None:
        return "n/a"
    ok = GOAL[0] <= row["ratio"] <= GOAL[1]
    return f"{row['ratio']:.2f}" + ("" if ok else " (outside 0.7–1.3)")


def table(rows: list[dict], column: str) -> str:
    lines = [f"| stage | jobs measured / planned | measured {column} (sum) | planned s (sum) "
             "| planned / measured |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['measured_jobs']} / {r['jobs']} | "
                     f"{r['measured_s']:.1f} | {r['planned_s']:.1f} | {_ratio(r)} |")
    return "\n".join(lines)


def section(rows: list[dict], args, command: str, calibration_line: str) -> str:
    load = os.getloadavg()[0]
    return "\n".join([
        f"### pipeline_stages — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        f"- command: `{command}`",
        f"- plan: `{args.plan}`; measured: Snakemake benchmark files, column `{args.column}`",
        f"- estimates: {calibration_line}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores; load average {load:.2f} "
        "when this was written", "",
        table(rows, args.column), "",
        "Goal (issue 10): planned / measured within 0.7–1.3 for every stage.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plan vs measured wall time per stage")
    parser.add_argument("plan", type=Path, help="workflow/compiled/<spec>/plan.json")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="repository root the benchmark paths are relative to")
    parser.add_argument("--column", default="s", choices=["s", "cpu_time"],
                        help="s: wall seconds (default); cpu_time: CPU seconds")
    parser.add_argument("--calibration", help="re-estimate with this calibration")
    parser.add_argument("--append", type=Path, help="append a section to this markdown file")
    args = parser.parse_args(argv)
    from clmrepro.calibration.files import load_calibration
    from clmrepro.plan.estimate import describe

    calibration = load_calibration(args.calibration) if args.calibration else None
    rows = compare(args.plan, args.root, args.column, calibration)
    if not any(r["measured_jobs"] for r in rows):
        print(f"{args.plan}: no benchmark files found under {args.root}; run the pipeline first",
              file=sys.stderr)
        return 1
    line = describe(calibration) if calibration else "as stored in the plan (clmrepro compile)"
    print(table(rows, args.column))
    if args.append is not None:
        command = " ".join([".venv/bin/python -m benchmarks.pipeline_stages", *sys.argv[1:]])
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(section(rows, args, command, line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
