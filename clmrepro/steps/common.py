"""What every step shares: read a job file, set threads and device, report progress, stop well.

A step is ``python -m clmrepro.steps.<stage> [--debug] JOB.json``: a typed ``run_<stage>(job)``
that does the work and a thin ``main(argv)`` calling :func:`step_main`.  The job file
(docs/architecture.md) holds every input, output and parameter, so Snakemake and DVC run the
very same command.

:func:`step_main` is where a step meets the outside world (docs/reliability.md):

- it checks the job file and its input files first (``steps.inputs``);
- SIGTERM (Slurm's time limit or preemption, ``kill``) or SIGINT (Ctrl-C) only sets a flag,
  :func:`stop_requested`; long loops in core take ``should_stop=stop_requested``, save their
  state at the next safe point and raise :class:`Interrupted`; the step prints one line and
  exits 143 (128 + SIGTERM).  A second signal exits at once, and so does a step that has not
  reached a safe point ``CLMREPRO_STOP_GRACE_S`` seconds (default 50) after the first;
- a known failure (a broken input, a full disk, a corrupt dataset) prints one line naming the
  file, what is wrong and what to do, exit code 1; the traceback only with ``--debug`` or
  ``CLMREPRO_DEBUG=1``.  Anything else is a bug and keeps Python's traceback.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from clmrepro.core.checkpoints import ArtifactError
from clmrepro.core.interrupt import Interrupted
from clmrepro.plan.jobs import AnyJob, JobBase
from clmrepro.steps.inputs import Job, check_inputs, read_job

EXIT_FAILED = 1
EXIT_USAGE = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_GRACE_S = 50.0  # below the 60 s of the Slurm profile's --signal=TERM@60
_stop = threading.Event()
_received: list[int] = []


def stop_requested() -> bool:
    """True once the step got SIGTERM or SIGINT: stop at the next safe point."""
    return _stop.is_set()


def load_job(path: str | Path) -> AnyJob:
    """The typed job of a job file (``steps.inputs.read_job``): refused in one line before
    any work if a key is unknown, missing or of the wrong type."""
    return read_job(path)


def prepare_torch(job: Job | AnyJob):
    """The job's threads and device (``core.devices.prepare_torch``); the device it asked for."""
    from clmrepro.core import devices

    if isinstance(job, JobBase):
        return devices.prepare_torch(job.threads, job.device)
    return devices.prepare_torch(int(job.get("threads", 1)), job.get("device", "auto"))


def show_progress() -> bool:
    return sys.stderr.isatty()


def say(line: str) -> None:
    """One line on stderr (the job's log under Snakemake)."""
    print(f"[clmrepro] {' '.join(line.split())}", file=sys.stderr, flush=True)


def _debug(args: list[str]) -> tuple[bool, list[str]]:
    flag = "--debug" in args
    env = os.environ.get("CLMREPRO_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return flag or env, [a for a in args if a != "--debug"]


def _grace_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("CLMREPRO_STOP_GRACE_S", DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


def _exit_now(job_id: str, why: str, signum: int) -> None:
    say(f"{job_id}: {why}")
    sys.stdout.flush()
    os._exit(128 + signum)


def _watch(read_fd: int, job_id: str, grace: float) -> None:
    """Runs in a thread: Python runs signal handlers in the main thread only between bytecodes,
    so a main thread busy in one long torch call would not notice a second signal for a
    while.  The wakeup fd is written by the C-level handler at once."""
    while True:
        ready, _, _ = select.select([read_fd], [], [], grace if _received else None)
        if not ready:  # the grace period ran out without a safe point
            name = signal.Signals(_received[0]).name
            _exit_now(job_id, f"stopped by {name}; no safe point within {grace:g} s, so "
                      f"nothing more was saved; rerun the same command to resume from the "
                      f"last saved state", _received[0])
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        for signum in data:
            if signum == 0:  # step_main is done: stop watching
                return
            if signum not in STOP_SIGNALS:
                continue
            _received.append(signum)
            if len(_received) == 1:
                _stop.set()
            else:
                _exit_now(job_id, f"second {signal.Signals(signum).name}: exiting now without "
                          f"saving; rerun the same command to resume from the last saved "
                          f"state", signum)


def _ignore(signum, frame) -> None:
    """The Python-level handler: the watcher thread reacts (it sees the signal at once)."""


@contextmanager
def stop_on_signals(job_id: str) -> Iterator[None]:
    """SIGTERM/SIGINT set :func:`stop_requested` for the duration; previous handlers are put
    back afterwards (steps also run inside pytest)."""
    _stop.clear()
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore)
    watcher = threading.Thread(target=_watch, args=(read_fd, job_id, _grace_seconds()),
                               name="clmrepro-stop-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(old_wakeup)
        os.write(write_fd, b"\0")
        watcher.join(timeout=5)
        os.close(write_fd)
        os.close(read_fd)


def known_failure(error: BaseException) -> str | None:
    """The one line for a failure that is the user's or the machine's, not a bug; None else."""
    data = sys.modules.get("clmrepro.core.data")  # only raised once it is imported (torchvision)
    if isinstance(error, ArtifactError) or (data and isinstance(error, data.DatasetUnavailable)):
        return str(error)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}cannot write: {os.strerror(error.errno).lower()}; free some space and rerun"
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return (f"the GPU ran out of memory ({first[:160]}); set `execution: {{gpu_memory_gb: "
                f"<your card's GB>}}` so the plan sizes the job to it, or use a smaller "
                f"batch_size, `execution: {{population: sequential}}`, or a larger GPU")
    return None


def step_main(run: Callable[[Any], None], argv: list[str] | None = None, *,
              typed: bool = False) -> int:
    """Run ``run`` on the job file named in ``argv``: on its typed model (``typed``, the data
    step) or on the checked content as a dict (the other steps, which read dicts today)."""
    debug, args = _debug(list(sys.argv[1:] if argv is None else argv))
    if len(args) != 1:
        print("usage: python -m clmrepro.steps.<stage> [--debug] JOB.json", file=sys.stderr)
        return EXIT_USAGE
    try:
        model = load_job(args[0])
    except ArtifactError as error:
        if debug:
            raise
        say(str(error))
        return EXIT_FAILED
    say(f"{model.stage} {model.id}")
    content = model.as_read()  # the very content of the file, checked, in the file's order
    with stop_on_signals(model.id):
        try:
            check_inputs(content)
            run(model if typed else content)
        except Interrupted as stopped:
            name = signal.Signals(_received[0]).name if _received else "request"
            say(f"{model.id}: stopped by {name}; saved {stopped.saved}; rerun the same "
                f"command to resume")
            return 128 + (_received[0] if _received else signal.SIGTERM)
        except Exception as error:
            line = None if debug else known_failure(error)
            if line is None:
                raise
            say(f"{model.id}: {line}")
            return EXIT_FAILED
    return 0
