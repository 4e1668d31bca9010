import copy

import pytest
import torch
import torch.nn.functional as F

from clmrepro.core.models import LeNet5, ResNet18
from clmrepro.core.stacked import StackedPopulation

# two computations that round differently: run again with other CPUs' kernels (Makefile)
pytestmark = pytest.mark.numerics

torch.set_num_threads(1)


def _population(cls, n, **kwargs):
    torch.manual_seed(0)
    return [cls(**kwargs) for _ in range(n)]


@pytest.mark.parametrize("cls,channels", [(LeNet5, 1), (ResNet18, 3)])
def test_each_and_all_match_the_submodels_one_by_one(cls, channels):
    models = [m.eval() for m in _population(cls, 3, in_channels=channels)]
    # give BatchNorm non-trivial statistics so eval mode really uses them
    for k, m in enumerate(models):
        for module in m.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.1 * k)
                module.running_var.fill_(1.0 + k)
    stacked = StackedPopulation(models).eval()
    x_each = torch.rand(3, 4, channels, 32, 32)
    x_all = torch.rand(4, channels, 32, 32)
    with torch.no_grad():
        got_each = stacked.each(x_each)
        got_all = stacked.all(x_all)
        for k, m in enumerate(models):
            assert torch.allclose(got_each[k], m(x_each[k]), atol=1e-5)
            assert torch.allclose(got_all[k], m(x_all), atol=1e-5)
    # submodels differ, so a mix-up of blocks would be visible
    assert not torch.allclose(got_all[0], got_all[1], atol=1e-3)


def test_training_updates_each_submodel_like_separate_modules():
    models = _population(LeNet5, 3)
    reference = [copy.deepcopy(m).train() for m in models]
    stacked = StackedPopulation(models, requires_grad=True).train()
    opt = torch.optim.SGD(stacked.parameters(), lr=0.1)
    ref_opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in reference]
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 16, 1, 32, 32, generator=gen)
    y = torch.randint(0, 10, (3, 16), generator=gen)
    out = stacked.each(x)
    loss = sum(F.cross_entropy(out[k], y[k]) for k in range(3))
    opt.zero_grad()
    loss.backward()
    opt.step()
    for k, m in enumerate(reference):
        ref_opts[k].zero_grad()
        F.cross_entropy(m(x[k]), y[k]).backward()
        ref_opts[k].step()
    stacked.write_to(models)
    for k in range(3):
        for (name, got), want in zip(models[k].state_dict().items(),
                                     reference[k].state_dict().values()):
            assert torch.allclose(got.double(), want.double(), atol=1e-5), name
        # the running statistics moved (train-mode BatchNorm updated them in place)
        assert models[k].bn1.num_batches_tracked.item() == 1
        assert not torch.allclose(models[k].bn1.running_mean, torch.zeros(6))


def test_each_refuses_a_wrong_number_of_blocks():
    stacked = StackedPopulation(_population(LeNet5, 2))
    with pytest.raises(ValueError, match="one input block per submodel"):
        stacked.each(torch.rand(3, 1, 1, 32, 32))


def test_mixed_architectures_are_refused():
    with pytest.raises(ValueError, match="share one architecture"):
        StackedPopulation([LeNet5(), ResNet18()])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("cls,channels", [(LeNet5, 1), (ResNet18, 3)])
def test_train_mode_forward_and_running_statistics_match(cls, channels, memory_format):
    models = [m.train() for m in _population(cls, 2, in_channels=channels)]
    reference = [copy.deepcopy(m) for m in models]
    stacked = StackedPopulation(models, memory_format=memory_format).train()
    assert stacked.packed is not None  # the registry's architectures run packed, not vmap-ed
    x = torch.rand(2, 4, channels, 32, 32)
    with torch.no_grad():
        got = stacked.each(x)
        for k, m in enumerate(reference):
            assert torch.allclose(got[k], m(x[k]), atol=1e-4)
    stacked.write_to(models)
    for k in range(2):
        for (name, a), b in zip(models[k].state_dict().items(), reference[k].state_dict().values()):
            assert torch.allclose(a.double(), b.double(), atol=1e-5), name


def test_read_from_copies_in_place_and_other_modules_fall_back_to_vmap():
    class Tiny(torch.nn.Module):  # not in the registry: vmap path
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    torch.manual_seed(0)
    models = [Tiny(), Tiny()]
    stacked = StackedPopulation(models, requires_grad=True)
    assert stacked.packed is None
    leaf = stacked.params["fc.weight"]
    others = [Tiny(), Tiny()]
    stacked.read_from(others)
    assert stacked.params["fc.weight"] is leaf and torch.equal(leaf[1], others[1].fc.weight)
    x = torch.rand(2, 5, 4)
    assert torch.allclose(stacked.each(x)[1], others[1](x[1]), atol=1e-6)
    with pytest.raises(ValueError, match="expected 2 submodels to read from"):
        stacked.read_from(others[:1])


def _mnist_batch(n_images=100):
    from clmrepro.core.data import load_dataset, to_unit

    data = load_dataset("mnist-5k", n_train=n_images, n_test=10)
    return to_unit(data.x_train), data.y_train


def _relative_error(got, want):
    return ((got.double() - want).abs().max() / want.abs().max()).item()


def test_channels_last_training_statistics_are_accurate_on_cpu():
    """PyTorch's CPU BatchNorm for channels_last tensors loses digits on MNIST's conv
    activations (1-3% gradient error measured); the packed population and a single model in
    channels_last compute the batch statistics on contiguous memory instead."""
    from clmrepro.core.models import batch_norm_statistics_in_contiguous_memory

    x, y = _mnist_batch()
    models = _population(LeNet5, 2)
    exact = []
    for m in models:
        m64 = copy.deepcopy(m).double().train()
        loss = F.cross_entropy(m64(x.double()), y)
        exact.append(torch.autograd.grad(loss, [m64.conv1.weight, m64.conv2.weight]))
    stacked = StackedPopulation(models, requires_grad=True,
                                memory_format=torch.channels_last).train()
    out = stacked.each(torch.stack([x, x]))
    loss = sum(F.cross_entropy(out[k], y) for k in range(2))
    grads = torch.autograd.grad(loss, [stacked.params["conv1.weight"],
                                       stacked.params["conv2.weight"]])
    for k in range(2):
        for got, want in zip(grads, exact[k]):
            assert _relative_error(got[k], want) < 1e-4
    single = batch_norm_statistics_in_contiguous_memory(
        copy.deepcopy(models[0]).to(memory_format=torch.channels_last).train())
    loss = F.cross_entropy(single(x.contiguous(memory_format=torch.channels_last)), y)
    for got, want in zip(torch.autograd.grad(loss, [single.conv1.weight, single.conv2.weight]),
                         exact[0]):
        assert _relative_error(got, want) < 1e-4
