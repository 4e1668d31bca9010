import pytest
import torch

from clmrepro.core.data import load_dataset
from clmrepro.core.training.config import AdversarialConfig, LinkingConfig, TrainConfig
from clmrepro.core.training.loop import init_population, monitored_index, train_population
from clmrepro.core.training.step import accuracy

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_mnist():
    return load_dataset("mnist-5k", n_train=250, n_test=50)


@pytest.fixture(scope="module")
def small_cifar():
    return load_dataset("fake-cifar10", n_train=60, n_test=20)


def adam(epochs=2, batch_size=10):
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=1e-3)


def weights(models):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in models]


def same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def run(data, *, seed=1, size=3, training=None, linking=None, adversarial=None, arch_channels=1, **kw):
    models = init_population("lenet5", size, in_channels=arch_channels, num_classes=10, seed=seed)
    record = train_population(models, data, training=training or adam(), linking=linking,
                              adversarial=adversarial, seed=seed, device=CPU, progress=False, **kw)
    return models, record


def test_init_population_deterministic_distinct_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = init_population("lenet5", 3, in_channels=1, num_classes=10, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = init_population("lenet5", 3, in_channels=1, num_classes=10, seed=4)
    assert same(weights(a), weights(b))
    assert not torch.equal(a[0].conv1.weight, a[1].conv1.weight)
    c = init_population("lenet5", 1, in_channels=1, num_classes=10, seed=5)
    assert not torch.equal(a[0].conv1.weight, c[0].conv1.weight)


def test_prse_examinations_floor_k_over_10_per_epoch(small_mnist):
    # 250 images, batch 10: k = 25 minibatches, so floor(25 / 10) = 2 per submodel per epoch;
    # a counter carried over epochs would give 5 over two epochs split 2 + 3
    models, record = run(small_mnist, linking=LinkingConfig(alpha=0.1, delta=0.1, prse_every=10))
    x, y = small_mnist.x_test, small_mnist.y_test
    assert record["test_accuracy"] == [accuracy(m, x, y, batch_size=7, device=CPU) for m in models]
    prse = record["prse"]
    assert prse["examinations"] == [[2, 2, 2], [2, 2, 2]]
    assert len(prse["monitored"]) == 2 * 3 * 2 and all(len(v) == 3 for v in prse["monitored"])
    mask = torch.tensor(prse["mask"])
    assert mask.shape == (1, 5, 5)
    c, h, w = prse["monitored_index"][1:]
    assert prse["monitored_index"][0] == 0 and mask[c, h, w] == 1
    assert record["regime"] == "clm" and record["size"] == 3
    assert len(record["history"]) == 6 and torch.tensor(record["conv1"]).shape == (3, 6, 1, 5, 5)
    assert len(record["test_accuracy"]) == 3


def test_monitored_index_first_masked_of_filter0():
    mask = torch.zeros(2, 3, 3)
    mask[1, 2, 0] = 1
    mask[1, 2, 2] = 1
    assert monitored_index(mask, (4, 2, 3, 3)) == [0, 1, 2, 0]
    full = torch.zeros(4, 2, 3, 3)
    full[2, 0, 1, 1] = 1
    assert monitored_index(full, (4, 2, 3, 3)) == [2, 0, 1, 1]
    assert monitored_index(torch.zeros(2, 3, 3), (4, 2, 3, 3)) is None


def test_same_seed_bit_identical_and_prse_is_the_only_difference(small_mnist):
    link = LinkingConfig(alpha=0.1, delta=0.1, prse_every=5)
    a, rec_a = run(small_mnist, linking=link, training=adam(epochs=1))
    b, rec_b = run(small_mnist, linking=link, training=adam(epochs=1))
    assert same(weights(a), weights(b)) and rec_a["history"] == rec_b["history"]
    # α = 0: PRSE writes nothing, so CLM must equal ULM bit for bit
    zero, _ = run(small_mnist, linking=LinkingConfig(alpha=0.0, delta=0.1, prse_every=5), training=adam(epochs=1))
    ulm, rec_ulm = run(small_mnist, training=adam(epochs=1))
    assert same(weights(zero), weights(ulm)) and rec_ulm["prse"] is None
    assert not same(weights(a), weights(ulm))
    other, _ = run(small_mnist, seed=2, linking=link, training=adam(epochs=1))
    assert not same(weights(a), weights(other))


class Interrupt(Exception):
    pass


def stop_after_first(epoch):
    if epoch == 0:
        raise Interrupt


@pytest.mark.parametrize("regime", ["clm-sgd-cosine-augment", "clm-adv"])
def test_resume_after_interruption_is_bit_identical(small_cifar, tmp_path, regime):
    if regime == "clm-adv":
        training = adam(epochs=2, batch_size=20)
        adversarial = AdversarialConfig(eps=0.1, alpha=0.05, steps=2)
    else:
        training = TrainConfig(epochs=2, batch_size=20, optimizer="sgd", lr=0.05, momentum=0.9,
                               weight_decay=5e-4, schedule="cosine", t_max=3, augment=True)
        adversarial = None
    kw = dict(size=2, training=training, adversarial=adversarial, arch_channels=3,
              linking=LinkingConfig(alpha=0.05, delta=0.5, prse_every=1, mask="per-weight"))
    full, rec_full = run(small_cifar, state_dir=tmp_path / "full", **kw)
    with pytest.raises(Interrupt):
        run(small_cifar, state_dir=tmp_path / "cut", on_epoch_end=stop_after_first, **kw)
    assert (tmp_path / "cut" / "last.pt").exists()
    resumed, rec_resumed = run(small_cifar, state_dir=tmp_path / "cut", **kw)
    assert same(weights(full), weights(resumed))
    assert rec_full["history"] == rec_resumed["history"]
    assert rec_full["prse"] == rec_resumed["prse"]
    # a state saved under other settings is not resumed: the run starts over
    changed = dict(kw, linking=LinkingConfig(alpha=0.07, delta=0.5, prse_every=1, mask="per-weight"))
    fresh, _ = run(small_cifar, state_dir=tmp_path / "cut", **changed)
    scratch, _ = run(small_cifar, **changed)
    assert same(weights(fresh), weights(scratch))


def test_adversarial_training_deterministic_and_restores_global_use(small_mnist):
    adv = AdversarialConfig(eps=0.3, alpha=0.1, steps=2, random_start=True)
    a, rec = run(small_mnist, size=2, adversarial=adv, training=adam(epochs=1, batch_size=50))
    b, _ = run(small_mnist, size=2, adversarial=adv, training=adam(epochs=1, batch_size=50))
    plain, _ = run(small_mnist, size=2, training=adam(epochs=1, batch_size=50))
    assert same(weights(a), weights(b)) and not same(weights(a), weights(plain))
    assert rec["regime"] == "ulm-adv"


def test_accuracy_counts_fraction_and_keeps_mode():
    class Constant(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1.0
            return out

    model = Constant().train()
    y = torch.tensor([3, 3, 1, 3, 0])
    acc = accuracy(model, torch.zeros(5, 1, 32, 32, dtype=torch.uint8), y, batch_size=2, device=CPU)
    assert acc == pytest.approx(3 / 5) and model.training


def test_rejects_unknown_options(small_mnist):
    with pytest.raises(ValueError, match="adam or sgd"):
        run(small_mnist, training=TrainConfig(epochs=1, batch_size=10, optimizer="rmsprop", lr=1e-3))
    with pytest.raises(ValueError, match="conv1"):
        run(small_mnist, linking=LinkingConfig(alpha=0.1, delta=0.1, prse_every=1, layer="fc1"))


@pytest.mark.slow
def test_mnist5k_ulm_reaches_95_and_clm_retrained_stays_within_2_points():
    # the paper's MNIST settings (docs/reference.md §1): Adam lr 1e-3, batch 100; CLM retrained
    # from the ULM with Adam lr 1e-4, α = δ = 0.1, PRSE every 10, shared mask.  CLM gets 20
    # epochs, not 5: a mnist-5k epoch has 40 minibatches against MNIST's 600, and with 5
    # epochs (200 steps) CLM lost 4.8 points (BENCHMARKS.md); with 20 it stays within 0.3.
    data = load_dataset("mnist-5k")
    models, ulm = run(data, size=2, training=adam(epochs=5, batch_size=100))
    assert min(ulm["test_accuracy"]) >= 0.95
    retrain = TrainConfig(epochs=20, batch_size=100, optimizer="adam", lr=1e-4)
    clm = train_population(models, data, training=retrain, seed=7, device=CPU, progress=False,
                           linking=LinkingConfig(alpha=0.1, delta=0.1, prse_every=10),
                           adversarial=None)
    assert clm["prse"]["examinations"] == [[4, 4]] * 20  # 40 minibatches → 4 per epoch
    ulm_mean = sum(ulm["test_accuracy"]) / 2
    clm_mean = sum(clm["test_accuracy"]) / 2
    assert abs(clm_mean - ulm_mean) <= 0.02


@pytest.mark.parametrize("execution", [None, {"population": "batched"}])
def test_a_population_handed_over_in_eval_mode_is_trained_in_train_mode(small_mnist, execution):
    """A retrain starts from population.pt, whose submodels load in eval mode: training must
    still run BatchNorm on batch statistics (and update the running ones), exactly as for
    submodels handed over in train mode."""
    from clmrepro.core.training.config import ExecutionConfig

    extra = {} if execution is None else {"execution": ExecutionConfig(**execution)}
    handed = [init_population("lenet5", 2, in_channels=1, num_classes=10, seed=3)
              for _ in range(2)]
    for m in handed[0]:
        m.eval()
    linking = LinkingConfig(alpha=0.1, delta=0.1, prse_every=5)
    for models in handed:
        train_population(models, small_mnist, training=adam(epochs=1), linking=None,
                         adversarial=None, seed=3, device=CPU, progress=False, **extra)
    assert same(weights(handed[0]), weights(handed[1]))
    assert all(int(m.bn1.num_batches_tracked) == 25 for m in handed[0])
    # and with counter linking (Alg. 1 order), the regime the bug hid in
    again = [init_population("lenet5", 2, in_channels=1, num_classes=10, seed=3)
             for _ in range(2)]
    for m in again[0]:
        m.eval()
    for models in again:
        train_population(models, small_mnist, training=adam(epochs=1), linking=linking,
                         adversarial=None, seed=3, device=CPU, progress=False)
    assert same(weights(again[0]), weights(again[1]))
