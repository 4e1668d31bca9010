import pytest
import torch

from clmrepro.core.models import LeNet5, ResNet18, build_model, counter_linked_layer

torch.set_num_threads(1)


def test_lenet5_shapes_and_log_probabilities():
    model = LeNet5(in_channels=1, num_classes=10).eval()
    out = model(torch.rand(3, 1, 32, 32))
    assert out.shape == (3, 10)
    # log-softmax output: probabilities sum to one
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(3), atol=1e-5)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 3 and len(linears) == 2
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 3


def test_resnet18_is_cifar_variant():
    model = ResNet18(in_channels=3, num_classes=10).eval()
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.out_channels == 64
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    # logits, not log-probabilities
    assert not torch.allclose(out.exp().sum(dim=1), torch.ones(2), atol=1e-3)
    n_params = sum(p.numel() for p in model.parameters())
    assert 11_000_000 < n_params < 11_300_000  # the well-known 11.17 M


def test_build_model_and_counter_linked_layer():
    lenet = build_model("lenet5", in_channels=1)
    assert counter_linked_layer(lenet) is lenet.conv1
    assert counter_linked_layer(lenet).weight.shape == (6, 1, 5, 5)
    resnet = build_model("resnet18", in_channels=3, num_classes=7)
    assert counter_linked_layer(resnet).weight.shape == (64, 3, 3, 3)
    assert resnet.linear.out_features == 7
    with pytest.raises(ValueError, match="lenet5"):
        build_model("vgg", in_channels=3)
