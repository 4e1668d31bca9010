"""The calibration file: what it holds, how it is read, which shipped one fits a machine.

No torch here: ``clmrepro.plan`` (imported by the Snakefile) reads calibrations.

A calibration is one JSON object (``schema_version`` 1); every time is in seconds, and a
per-image time is per image *and per submodel*::

    name, note, created (UTC ISO time), calibrate_seconds, threads, torch
    machine: {device: "cpu"|"cuda", device_name, cpu_count, platform, load_average}
    startup_s: {train, attack, evaluate, report}  # a job's process start: imports + dataset
    report_s_fixed: s                             # report work (after its imports): fixed part
    report_s_per_input: s                         # ... and the part per input file
                                                  # file: scores, training record, analysis
    thread_speedup: {"1": 1.0, "2": 1.4, ...}     # (CPU) time at 1 thread / time at N threads
    units: {architecture: {"<precision>-<memory_format>": {
        batch_sizes: {train, attack, eval}        # the batch sizes the costs were taken at
        train: s/image                            # forward + backward + optimizer step
        forward: {"<batch size>": s/image}        # eval mode, no gradient
        grad: s/image                             # one input gradient (eval mode, plain autograd)
        batched: {n, train, grad_each, grad_all, forward_all} | null   # StackedPopulation
    }}}
    attacks: {architecture: {
        step: {fgsm, pgd, mifgsm, eot-pgd}        # s/image per gradient step (eot-pgd: per
                                                  # step and EOT draw), torchattacks, one model
        dispatch: {"<n>": s/image}                # one gradient through RandomDispatch of n
        autoattack: {
          units: {apgd_ce, apgd_t, fab_t, square} # s per image-step: apgd_ce per initially
              # correct image and step; apgd_t / fab_t per image that reached them, per step,
              # all 9 targets together; square per image that reached it, per query
          survival: {standard|adversarial: {clean, apgd_ce, apgd_t, fab_t}}  # fractions of
              # all images still correct after each component, on a quickly trained standard
              # and a quickly adversarially trained model
          measured_with: {eps, steps, n_queries, images}}}}

Architectures or variants a calibration lacks are filled by ``clmrepro.plan.estimate`` from
the closest measured one (documented there).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

SCHEMA_VERSION = 1
# calibration/*.json beside the package: the repository's shipped calibrations
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "calibration"
# The calibration every compiled plan is priced with unless `clmrepro compile --calibration`
# names another: the committed plans (workflow/compiled/) and their runtime limits are then the
# same bytes on every machine, whatever GPU it has or $CLMREPRO_CALIBRATION says (issue 25).
# A CPU one: a job's runtime limit priced on the CPU is generous on a GPU, never too short.
SHIPPED_CALIBRATION = SHIPPED_DIR / "cpu-2core.json"
ENV_VARIABLE = "CLMREPRO_CALIBRATION"
REQUIRED = ("name", "machine", "threads", "startup_s", "units", "attacks")
STAGES = ("train", "attack", "evaluate", "report")


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the problem."""


def check_calibration(data: object, source: str = "calibration") -> dict:
    """The calibration itself, or CalibrationError naming what is missing."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: a calibration is a JSON object "
                               f"(got {type(data).__name__})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise CalibrationError(f"{source}: schema_version must be {SCHEMA_VERSION} "
                               f"(got {data.get('schema_version')!r}); rerun `clmrepro calibrate`")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise CalibrationError(f"{source}: lacks {', '.join(missing)}; rerun `clmrepro calibrate`")
    if data["machine"].get("device") not in ("cpu", "cuda"):
        raise CalibrationError(f"{source}: machine.device must be cpu or cuda "
                               f"(got {data['machine'].get('device')!r})")
    absent = [stage for stage in STAGES if stage not in data["startup_s"]]
    if absent:
        raise CalibrationError(f"{source}: startup_s lacks {', '.join(absent)}")
    if not data["units"]:
        raise CalibrationError(f"{source}: units is empty; rerun `clmrepro calibrate`")
    return data


def load_calibration(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the calibration ({exc.strerror or exc})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}:{exc.lineno}: not JSON ({exc.msg})")
    calibration = check_calibration(data, str(path))
    calibration.setdefault("source", str(path))
    return calibration


@lru_cache(maxsize=1)
def reference_calibration() -> dict | None:
    """The shipped calibration compiled plans are priced with by default
    (``SHIPPED_CALIBRATION``), None when the file is absent or unreadable (the built-in
    constants then)."""
    try:
        return load_calibration(SHIPPED_CALIBRATION)
    except CalibrationError:
        return None


def calibration_digest(calibration: dict) -> str:
    """sha256 of a calibration's content (sorted-key JSON, without where it was read from):
    the same measurements give the same digest wherever the file lies."""
    content = {k: v for k, v in calibration.items() if k != "source"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def shipped_calibrations(directory: Path = SHIPPED_DIR) -> list[dict]:
    """Every readable calibration in ``directory``, by file name."""
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            found.append(load_calibration(path))
        except CalibrationError:
            continue  # a broken shipped file must not break `clmrepro plan`
    return found


def local_gpu_name() -> str | None:
    """The first NVIDIA GPU's model name from the driver's /proc files (no subprocess, no
    torch), None when no GPU is visible to this process."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return None
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return None


def choose_calibration(candidates: list[dict], device: str, *, cpu_count: int | None = None,
                       gpu_name: str | None = None) -> dict | None:
    """The candidate that best matches a machine: same device; on CUDA the same GPU model
    if there is one; on CPU the closest core count; among equals the newest."""
    same = sorted((c for c in candidates if c["machine"]["device"] == device),
                  key=lambda c: str(c.get("created", "")), reverse=True)
    if not same:
        return None
    if device == "cuda":
        if gpu_name:
            named = [c for c in same if gpu_name.lower() in str(c["machine"].get("device_name", "")).lower()]
            if named:
                return named[0]
        return same[0]
    cores = cpu_count or os.cpu_count() or 1
    return min(same, key=lambda c: abs(int(c["machine"].get("cpu_count") or 1) - cores))


@lru_cache(maxsize=8)
def machine_calibration(requested_device: str = "auto") -> dict | None:
    """The calibration that prices a plan for *this* machine (`clmrepro plan` without
    ``--calibration``; never compiling, see ``SHIPPED_CALIBRATION``):
    ``$CLMREPRO_CALIBRATION`` if set, else the shipped one that best matches this machine for
    jobs asking for ``requested_device`` (auto: CUDA when a GPU is visible), else None
    (built-in constants)."""
    override = os.environ.get(ENV_VARIABLE)
    if override:
        return load_calibration(override)
    gpu = local_gpu_name()
    device = "cuda" if requested_device == "cuda" or (requested_device == "auto" and gpu) else "cpu"
    return choose_calibration(shipped_calibrations(), device, gpu_name=gpu)
