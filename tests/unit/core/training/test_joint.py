"""Joint training of the diversity baselines (core.training.joint): the shared batch, one step
of every member, determinism, resumption, and the record."""

import copy

import pytest
import torch
import torch.nn.functional as F

from clmrepro.core.data import load_dataset, to_unit
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.core.training.config import DiversityConfig, LinkingConfig, TrainConfig
from clmrepro.core.training.loop import init_population, train_population
from clmrepro.kinds import regimes

torch.set_num_threads(1)
CPU = torch.device("cpu")

KNOBS = {
    "adp": {"alpha": 2.0, "beta": 0.5, "log_offset": 1e-20, "det_offset": 1e-6},
    "gal": {"lam": 0.5},
    "trs": {"scale": 5.0, "coeff": 2.0, "lamda": 2.0, "init_eps": 0.1, "adv_eps": 0.2, "steps": 2},
    "dverge": {"eps": 0.3, "step_size": 0.1, "steps": 2, "layers": ["bn1", "bn2", "bn3"]},
}


@pytest.fixture(scope="module")
def small_mnist():
    return load_dataset("mnist-5k", n_train=120, n_test=40)


def adam(epochs=2, batch_size=30):
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=1e-3)


def run(data, method, *, seed=3, size=2, training=None, knobs=None, linking=None, **kw):
    models = init_population("lenet5", size, in_channels=1, num_classes=10, seed=seed)
    start = copy.deepcopy(models)
    cfg = joint_config(method, knobs or KNOBS[method])
    record = train_population(models, data, training=training or adam(), linking=linking,
                              adversarial=None, seed=seed, device=CPU, progress=False,
                              diversity=cfg, **kw)
    return start, models, record


def joint_config(method, knobs) -> DiversityConfig:
    """The method's joint loss as its regime module (clmrepro.kinds.regimes) supplies it."""
    return regimes.get(method).train_configs({"diversity": {"method": method, **knobs}})["diversity"]


def states(models):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in models]


def same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


@pytest.mark.parametrize("method", sorted(KNOBS))
def test_each_method_trains_every_member_deterministically_without_the_global_rng(small_mnist, method):
    rng = torch.random.get_rng_state()
    start, models, record = run(small_mnist, method)
    assert torch.equal(torch.random.get_rng_state(), rng)
    _, again, record_again = run(small_mnist, method)
    assert same(states(models), states(again))
    assert record["history"] == record_again["history"]
    assert record["regime"] == method and record["prse"] is None
    # one history entry per member and epoch, the loss terms once per epoch
    assert sorted((h["epoch"], h["submodel"]) for h in record["history"]) == \
        [(e, i) for e in range(2) for i in range(2)]
    assert len(record["diversity"]["terms"]) == 2 and record["diversity"]["terms"][0]
    assert record["diversity"]["method"] == method
    for before, after in zip(start, models):
        assert not torch.equal(before.conv1.weight, after.conv1.weight)
    # another seed, another run
    _, other, _ = run(small_mnist, method, seed=4)
    assert not same(states(models), states(other))


def test_a_joint_step_gives_every_member_the_same_batch_and_its_own_optimiser_step(small_mnist):
    """ADP with α = β = 0 is the sum of the members' cross-entropies: one minibatch (batch =
    the training set) must move each member exactly as its own Adam step on CE(member(x), y)
    over the shared batch does."""
    n_train = len(small_mnist.y_train)
    training = adam(epochs=1, batch_size=n_train)
    knobs = dict(KNOBS["adp"], alpha=0.0, beta=0.0)
    start, models, _ = run(small_mnist, "adp", training=training, knobs=knobs)
    order = torch.randperm(n_train, generator=generator(derive_seed(3, "order", 0)))
    x, y = to_unit(small_mnist.x_train[order]).float(), small_mnist.y_train[order]
    for before, after in zip(start, models):
        model = copy.deepcopy(before).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        for name, value in model.state_dict().items():
            torch.testing.assert_close(after.state_dict()[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["adp", "dverge"])
def test_resume_inside_an_epoch_is_bit_identical(small_mnist, tmp_path, method):
    full_start, full, record = run(small_mnist, method)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(Interrupted):
        run(small_mnist, method, state_dir=tmp_path, should_stop=stop_after_three, state_every_s=0)
    _, resumed, record_resumed = run(small_mnist, method, state_dir=tmp_path)
    assert same(states(full), states(resumed))
    assert record["history"] == record_resumed["history"]
    assert record["diversity"] == record_resumed["diversity"]


def test_a_baseline_refuses_linking(small_mnist):
    with pytest.raises(ValueError, match="without counter-linking"):
        run(small_mnist, "adp", linking=LinkingConfig(alpha=0.1, delta=0.1, prse_every=10))


def test_the_state_fingerprint_reads_the_method_and_knobs_not_the_loss_object(small_mnist):
    """A saved state is resumed in another process, where the loss function is another
    object: the fingerprint holds the method and its knobs only, written as before the loss
    became a field of DiversityConfig (states saved then still resume)."""
    from clmrepro.core.training.config import Execution
    from clmrepro.core.training.state import fingerprint

    models = init_population("lenet5", 2, in_channels=1, num_classes=10, seed=0)
    execution = Execution(schedule="joint", stacked=False, channels_last=False, bf16=False)
    knobs = dict(KNOBS["gal"])

    def key(loss):
        cfg = DiversityConfig("gal", dict(knobs), loss=loss)
        return fingerprint(models, small_mnist, adam(), None, None, 3, execution, cfg)

    assert key(lambda *a, **k: None) == key(lambda *a, **k: None)
    assert key(print)["diversity"] == repr(sorted({"method": "gal", "params": knobs}.items()))
    other = DiversityConfig("gal", {"lam": 0.1}, loss=print)
    assert fingerprint(models, small_mnist, adam(), None, None, 3, execution, other) != key(print)
