"""The checkout's run lock (clmrepro.runlock): one run at a time, no stale lock after SIGKILL,
handed down to the holder's children, respected by `clmrepro compile`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import REPO

from clmrepro import runlock
from clmrepro.cli import main
from clmrepro.runlock import ENV_FD, EXIT_BUSY, CheckoutBusy, hold, hold_for_snakemake

HOLDER = """
import sys, time
from clmrepro.runlock import hold
lock = hold("test holder", sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def other_holder(tmp_path):
    """Another process holding tmp_path's lock (killed with SIGKILL at the end)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path, other_holder):
    with pytest.raises(CheckoutBusy) as caught:
        hold("clmrepro run", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"clmrepro run: another run holds this checkout (pid "
                              f"{other_holder.pid}, since ")
    assert "wait for it to finish or stop it (Ctrl-C in its terminal), then try again" in message
    assert "-c " in message  # the holder's command line


def test_the_lock_dies_with_its_process_even_on_sigkill(tmp_path, other_holder):
    os.kill(other_holder.pid, signal.SIGKILL)
    other_holder.wait()
    with hold("clmrepro run", tmp_path) as lock:
        assert lock.owned
    assert (tmp_path / ".clmrepro-state" / "run.lock").exists()  # left, but not locked
    with hold("again", tmp_path):
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with hold("outer", tmp_path) as outer:
        with hold("inner", tmp_path) as inner:
            assert inner is outer
        assert runlock._held  # still held by the outer
    assert not runlock._held


CHILD = """
import sys
from clmrepro.runlock import CheckoutBusy, hold
try:
    hold("child", sys.argv[1])
    print("got it")
except CheckoutBusy as busy:
    print("refused:", busy)
"""


def test_children_of_the_holder_share_it_others_do_not(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with hold("clmrepro run", tmp_path) as lock:
        child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], pass_fds=lock.fds,
                               env={**env, **lock.env}, capture_output=True, text=True)
        assert child.stdout.strip() == "got it", child.stderr
        stranger = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)],
                                  env={**env, ENV_FD: str(lock.fd)}, capture_output=True,
                                  text=True)
        assert stranger.stdout.startswith("refused: child: another run holds this checkout")
        assert "(-c pid " in stranger.stdout  # the child noted itself as a helper


def test_compile_waits_for_no_one_and_writes_nothing_while_a_run_holds(tmp_path, other_holder,
                                                                       capsys):
    assert main(["compile", str(REPO / "specs" / "tiny.yaml"), "--root", str(tmp_path)]) == \
        EXIT_BUSY
    err = capsys.readouterr().err
    assert err.startswith("[clmrepro] clmrepro compile: another run holds this checkout")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clmrepro-state"]


def test_the_snakefile_hook_refuses_a_second_snakemake(tmp_path, other_holder, monkeypatch,
                                                       capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        hold_for_snakemake()
    assert done.value.code == EXIT_BUSY
    assert capsys.readouterr().err.startswith("[clmrepro] snakemake: another run holds")


def test_the_snakefile_takes_the_lock_in_onstart():
    text = (REPO / "Snakefile").read_text()
    assert "onstart:\n" in text and "hold_for_snakemake()" in text
    assert Path(REPO / "Makefile").read_text().count("clmrepro run $(SPEC)") == 1
