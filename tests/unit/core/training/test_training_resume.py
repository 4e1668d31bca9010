"""Stopping mid-epoch (should_stop), crashing, and resuming bit-identically (issue 12)."""

import pytest
import torch

from clmrepro.core.checkpoints import safe_load
from clmrepro.core.data import load_dataset
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.training.config import (
    AdversarialConfig,
    ExecutionConfig,
    LinkingConfig,
    TrainConfig,
)
from clmrepro.core.training.loop import init_population, train_population
from clmrepro.core.training.state import STATE_FILE

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k", n_train=100, n_test=30)


@pytest.fixture(scope="module")
def cifar():
    return load_dataset("fake-cifar10", n_train=40, n_test=10)


# 100 images, batch 20: 5 minibatches per pass
CASES = {
    # Alg. 1 with PRSE every 2nd minibatch and PGD: the paper's CLM-Adv loop
    "clm-adv-sequential": dict(
        training=TrainConfig(epochs=2, batch_size=20, optimizer="adam", lr=1e-3),
        linking=LinkingConfig(alpha=0.05, delta=0.5, prse_every=2),
        adversarial=AdversarialConfig(eps=0.3, alpha=0.1, steps=2),
        execution=ExecutionConfig(population="sequential")),
    "ulm-batched": dict(
        training=TrainConfig(epochs=2, batch_size=20, optimizer="adam", lr=1e-3),
        linking=None, adversarial=None, execution=ExecutionConfig(population="batched")),
    "clm-lockstep-batched": dict(
        training=TrainConfig(epochs=2, batch_size=20, optimizer="adam", lr=1e-3),
        linking=LinkingConfig(alpha=0.05, delta=0.5, prse_every=2), adversarial=None,
        execution=ExecutionConfig(population="batched", clm_schedule="lockstep")),
}


def run(data, case, *, size=3, channels=1, **kw):
    models = init_population("lenet5", size, in_channels=channels, num_classes=10, seed=7)
    record = train_population(models, data, seed=7, device=CPU, progress=False, **case, **kw)
    record.pop("wall_seconds")
    return models, record


def same(a, b):
    return all(torch.equal(x.state_dict()[k], y.state_dict()[k]) for x, y in zip(a, b) for k in x.state_dict())


def stop_at(*calls):
    """A should_stop that says yes on the given call numbers (1-based), counting every call."""
    count = [0]

    def should_stop():
        count[0] += 1
        return count[0] in calls

    return should_stop


@pytest.mark.parametrize("name", list(CASES))
def test_stop_mid_epoch_then_resume_is_bit_identical(mnist, tmp_path, name):
    case = CASES[name]
    full, rec_full = run(mnist, case)
    # the first session stops after 7 minibatch checks (Alg. 1: submodel 1's 2nd minibatch;
    # lockstep: epoch 1's 2nd), the second after 3 more, the third runs to the end
    for stop in (stop_at(7), stop_at(3)):
        with pytest.raises(Interrupted) as caught:
            run(mnist, case, state_dir=tmp_path, should_stop=stop)
        assert caught.value.saved == str(tmp_path / STATE_FILE)
        progress = safe_load(tmp_path / STATE_FILE)["progress"]
        assert progress["batch"] > 0  # really mid-pass, not at an epoch boundary
    resumed, rec_resumed = run(mnist, case, state_dir=tmp_path)
    assert same(full, resumed)
    assert rec_full == rec_resumed


def test_crash_loses_at_most_one_minibatch_and_resumes_bit_identically(cifar, tmp_path):
    # SGD + cosine + augmentation: scheduler and augmentation generators must resume too
    case = dict(training=TrainConfig(epochs=3, batch_size=10, optimizer="sgd", lr=0.05, momentum=0.9,
                                     weight_decay=5e-4, schedule="cosine", t_max=3, augment=True),
                linking=LinkingConfig(alpha=0.05, delta=0.5, prse_every=1, mask="per-weight"),
                adversarial=None, execution=ExecutionConfig(population="sequential"))
    full, rec_full = run(cifar, case, size=2, channels=3)

    class Crash(Exception):
        pass

    def crash_on_call_6():
        crash_on_call_6.calls += 1
        if crash_on_call_6.calls == 6:
            raise Crash  # as if killed: the 6th minibatch's state was never saved
        return False

    crash_on_call_6.calls = 0
    with pytest.raises(Crash):
        run(cifar, case, size=2, channels=3, state_dir=tmp_path, should_stop=crash_on_call_6,
            state_every_s=0)
    progress = safe_load(tmp_path / STATE_FILE)["progress"]
    assert (progress["epoch"], progress["submodel"], progress["batch"]) == (0, 1, 1)
    resumed_at = []
    resumed, rec_resumed = run(cifar, case, size=2, channels=3, state_dir=tmp_path,
                               on_resume=lambda p: resumed_at.append((p.epoch, p.submodel, p.batch)))
    assert same(full, resumed) and rec_full == rec_resumed
    assert resumed_at == [(0, 1, 1)]  # told once, where it resumed


def test_without_periodic_saves_a_crash_goes_back_to_the_last_epoch(mnist, tmp_path):
    case = CASES["ulm-batched"]

    def crash_in_epoch_1():
        crash_in_epoch_1.calls += 1
        if crash_in_epoch_1.calls == 8:  # 5 minibatches per epoch: epoch 1's 3rd
            raise RuntimeError("killed")
        return False

    crash_in_epoch_1.calls = 0
    with pytest.raises(RuntimeError):
        run(mnist, case, state_dir=tmp_path, should_stop=crash_in_epoch_1, state_every_s=1e9)
    progress = safe_load(tmp_path / STATE_FILE)["progress"]
    assert (progress["epoch"], progress["batch"]) == (1, 0)


def test_a_changed_execution_does_not_resume(mnist, tmp_path):
    case = CASES["ulm-batched"]
    with pytest.raises(Interrupted):
        run(mnist, case, state_dir=tmp_path, should_stop=stop_at(3))
    changed = dict(case, execution=ExecutionConfig(population="batched", memory_format="channels_last"))
    resumed_at = []
    fresh, _ = run(mnist, changed, state_dir=tmp_path, on_resume=resumed_at.append)
    assert resumed_at == []  # a stale state is not resumed, and not announced
    scratch, _ = run(mnist, changed)
    assert same(fresh, scratch)


def test_stop_without_a_state_folder_says_nothing_was_saved(mnist):
    with pytest.raises(Interrupted, match="nothing"):
        run(mnist, CASES["ulm-batched"], should_stop=stop_at(1))
