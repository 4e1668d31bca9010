"""Plan vs measured bytes, per stage: what `clmrepro plan` says each stage writes against the
files a finished run left on disk.

    .venv/bin/python -m benchmarks.storage workflow/compiled/smoke/plan.json \
        [--root .] [--jobs] [--append BENCHMARKS.md]

For every job of the plan (``workflow/compiled/<spec>/plan.json``) and every output it
declares, the planned bytes (``clmrepro.plan.storage``) and the bytes on disk (a file's size;
a folder's files, summed).  Prints per stage the outputs found, measured and planned bytes and
planned / measured (goal: within 0.8-1.2 for every stage, issue 17), then the DVC cache
(``.dvc/cache``, ``du``-style: a hardlinked file counts once) and its ``cache.type``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from clmrepro.doctor import cache_links, dvc_cache_types
from clmrepro.plan.model import load_plan
from clmrepro.plan.storage import human, plan_bytes

GOAL = (0.8, 1.2)


def measured_bytes(path: Path) -> int | None:
    """A file's size, or the sum over a folder's files; None when it does not exist."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes of the files under ``folder``, each inode once as `du -b` counts them; the part
    in files that have another hard link, i.e. shared with the workspace)."""
    seen, total, shared = set(), 0, 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
                shared += info.st_size if info.st_nlink > 1 else 0
    return total, shared


def compare(plan_path: Path, root: Path = Path(".")) -> tuple[list[dict], list[dict]]:
    """(one row per stage and a total, one row per job output)."""
    sizes = plan_bytes(load_plan(plan_path))
    outputs, stages = [], {}
    for job in sizes.jobs:
        row = stages.setdefault(job.stage, {"stage": job.stage, "outputs": 0, "found": 0,
                                            "measured": 0, "planned": 0})
        for name, planned in job.outputs.items():
            found = measured_bytes(root / job.paths[name])
            row["outputs"] += 1
            outputs.append({"job": job.id, "output": name, "planned": planned, "measured": found})
            if found is not None:
                row["found"] += 1
                row["measured"] += found
                row["planned"] += planned
    rows = list(stages.values())
    rows.append({"stage": "total", **{key: sum(r[key] for r in rows)
                                      for key in ("outputs", "found", "measured", "planned")}})
    for row in rows + outputs:
        row["ratio"] = (row["planned"] / row["measured"]) if row["measured"] else None
    return rows, outputs


def _ratio(row: dict) -> str:
    if row["ratio"] is None:
        return "n/a"
    inside = GOAL[0] <= row["ratio"] <= GOAL[1]
    return f"{row['ratio']:.2f}" + ("" if inside else f" (outside {GOAL[0]}–{GOAL[1]})")


def table(rows: list[dict]) -> str:
    lines = ["| stage | outputs found / planned | measured | planned | planned / measured |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['found']} / {r['outputs']} | {r['measured']:,} "
                     f"({human(r['measured'])}) | {r['planned']:,} ({human(r['planned'])}) | "
                     f"{_ratio(r)} |")
    return "\n".join(lines)


def cache_line(root: Path) -> str:
    types = dvc_cache_types(root)
    if types is None:
        return "DVC: none in this checkout"
    cache = root / ".dvc" / "cache"
    used, shared = disk_usage(cache) if cache.is_dir() else (0, 0)
    return (f"DVC cache {cache}: {used:,} bytes ({human(used)}), {shared:,} of them hard links "
            f"shared with the workspace, {used - shared:,} its own; cache.type "
            f"{','.join(types)} ({'links' if cache_links(types) else 'copies'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plan vs measured bytes per stage")
    parser.add_argument("plan", type=Path, help="workflow/compiled/<spec>/plan.json")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="repository root the output paths are relative to")
    parser.add_argument("--jobs", action="store_true", help="also one line per output")
    parser.add_argument("--append", type=Path, help="append a section to this markdown file")
    args = parser.parse_args(argv)
    rows, outputs = compare(args.plan, args.root)
    if not rows[-1]["found"]:
        print(f"{args.plan}: no output found under {args.root}; run the pipeline first",
              file=sys.stderr)
        return 1
    text = table(rows)
    print(text)
    if args.jobs:
        for row in outputs:
            found = "missing" if row["measured"] is None else f"{row['measured']:,}"
            print(f"{row['job']:<48} {row['output']:<13} measured {found:>14}  planned "
                  f"{row['planned']:>14,}  {_ratio(row)}")
    line = cache_line(args.root)
    print(line)
    if args.append is not None:
        command = " ".join([".venv/bin/python -m benchmarks.storage", *sys.argv[1:]])
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write("\n".join([
                f"### storage — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
                f"- command: `{command}`", f"- plan: `{args.plan}`; {line}",
                f"- machine: {os.uname().sysname} {os.uname().machine}", "", text, "",
                f"Goal (issue 17): planned / measured within {GOAL[0]}–{GOAL[1]} per stage.",
                ""]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
