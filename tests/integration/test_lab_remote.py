"""A real DVC remote over SSH: an OpenSSH server on 127.0.0.1, started by the test.

One clone pushes both specs' outputs to an `ssh://` remote (the `dvc-ssh` plugin); a fresh
clone pulls them and `clmrepro restore`s; then Snakemake and `dvc status` have nothing to do
and the metrics are byte-identical.  Needs Debian's openssh-server (installed with
scripts/ensure-sshd.sh when missing, as root in CI) and dvc-ssh (requirements.lock).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import clmrepro
from test_pipeline import ROOT, dvc, git, snakemake

pytestmark = pytest.mark.slow
SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd in the foreground as our child: its own config, a host key and a client key made
    here, a free non-default port on 127.0.0.1, public-key login only."""
    if not SSHD.exists():
        subprocess.run(["sh", str(ROOT / "scripts/ensure-sshd.sh")], check=False)
    if not SSHD.exists():
        pytest.fail("no /usr/sbin/sshd: run scripts/ensure-sshd.sh (Debian's openssh-server, "
                    "needs root or sudo); the SSH remote round trip cannot run without it")
    try:
        import dvc_ssh  # noqa: F401
    except ImportError:
        pytest.fail("the dvc-ssh plugin is not installed (requirements.lock: dvc-ssh 4.3.0)")
    base = tmp_path_factory.mktemp("sshd")
    keygen(base / "host_key")
    keygen(base / "client_key")
    shutil.copy(base / "client_key.pub", base / "authorized_keys")
    (base / "authorized_keys").chmod(0o600)
    port = free_port()
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_key'}",
        f"PidFile {base / 'sshd.pid'}", f"AuthorizedKeysFile {base / 'authorized_keys'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "UsePAM no",
        # the keys live in pytest's temporary folders, whose parents sshd would refuse
        "StrictModes no", "Subsystem sftp internal-sftp", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = open(base / "sshd.log", "w")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"sshd did not start: {(base / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.2)
    store = base / "store"
    store.mkdir()
    yield {"url": f"ssh://{getpass.getuser()}@127.0.0.1:{port}{store}",
           "keyfile": str(base / "client_key"), "store": store}
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def test_push_to_ssh_remote_then_pull_into_a_fresh_clone(lab_run: Path, sshd, tmp_path,
                                                          monkeypatch):
    # DVC and ssh read nothing of the real home (no ~/.ssh/config, no global DVC config)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    origin = tmp_path / "origin"
    shutil.copytree(lab_run, origin, symlinks=True)
    dvc(origin, "remote", "add", "--default", "lab", sshd["url"])
    # the key's path is this machine's: .dvc/config.local (git-ignored), never committed
    dvc(origin, "remote", "modify", "--local", "lab", "keyfile", sshd["keyfile"])
    git(origin, "add", ".dvc/config")
    git(origin, "commit", "-q", "-m", "lab remote over ssh")
    push = dvc(origin, "push")
    assert "pushed" in push.stdout and any(sshd["store"].rglob("*")), push.stdout

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    assert not (clone / "results").exists() and not (clone / "reports/lab-a").exists()
    dvc(clone, "remote", "modify", "--local", "lab", "keyfile", sshd["keyfile"])
    pull = dvc(clone, "pull")
    assert "fetched" in pull.stdout or "added" in pull.stdout, pull.stdout
    clmrepro(clone, "restore")
    assert "Nothing to be done" in snakemake(clone, "-n").stdout
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    for name in ("lab-a", "lab-b"):
        for metrics in ("metrics.json", "dvc_metrics.json"):
            path = f"reports/{name}/{metrics}"
            assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    listing = clmrepro(clone, "list").stdout
    assert listing.count("up to date") == 4, listing
