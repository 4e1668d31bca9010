"""precision: bf16 reaches the joint regimes' forward passes and losses (issue 30): autocast
is entered around them, and fp32 runs never enter it."""

import pytest
import torch

from clmrepro.core.data import load_dataset
from clmrepro.core.training.config import DiversityConfig, ExecutionConfig, TrainConfig
from clmrepro.core.training.loop import init_population, train_population
from clmrepro.kinds import regimes

KNOBS = {"adp": {"alpha": 2.0, "beta": 0.5, "log_offset": 1e-20, "det_offset": 1e-6},
         "gal": {"lam": 0.5},
         "trs": {"scale": 5.0, "coeff": 2.0, "lamda": 2.0, "init_eps": 0.1, "adv_eps": 0.2,
                 "steps": 1},
         "dverge": {"eps": 0.3, "step_size": 0.1, "steps": 1, "layers": ["bn1"]}}


def diversity(method: str) -> DiversityConfig:
    """The regime's own joint loss and data order, as the train step builds them."""
    params = {"population": {"regime": method}, "diversity": {"method": method, **KNOBS[method]}}
    return regimes.get(method).train_configs(params)["diversity"]


def autocast_seen(method: str, precision: str) -> list[tuple[bool, torch.dtype]]:
    """(autocast on?, dtype of conv1's output) at every forward pass of member 0."""
    data = load_dataset("mnist-5k", n_train=40, n_test=20)
    models = init_population("lenet5", 2, in_channels=1, num_classes=10, seed=1)
    seen = []
    models[0].register_forward_pre_hook(
        lambda module, args: seen.append((torch.is_autocast_enabled("cpu"), None)))
    first_conv = next(m for m in models[0].modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, args, out: seen.append((None, out.dtype)))
    train_population(models, data, training=TrainConfig(epochs=1, batch_size=20, optimizer="adam",
                                                        lr=1e-3),
                     linking=None, adversarial=None, seed=1, device=torch.device("cpu"),
                     progress=False, diversity=diversity(method),
                     execution=ExecutionConfig(precision=precision))
    return seen


@pytest.mark.parametrize("method", sorted(KNOBS))
def test_bf16_enters_autocast_in_every_joint_regime(method):
    seen = autocast_seen(method, "bf16")
    training = [on for on, _ in seen if on is not None]
    assert training and any(training), seen            # the loss's forward passes ran under it
    assert torch.bfloat16 in {dtype for _, dtype in seen if dtype is not None}


def test_fp32_never_enters_autocast():
    seen = autocast_seen("gal", "fp32")
    assert not any(on for on, _ in seen if on is not None)
    assert {dtype for _, dtype in seen if dtype is not None} == {torch.float32}


def test_bf16_reaches_dverge_distillation():
    """DVERGE's feature distillation runs the members through hooks, not through the
    population's forward: under bf16 every training-mode forward of a member (distillation
    included) is in autocast, and the distilled batch stays fp32 (issue 30)."""
    data = load_dataset("mnist-5k", n_train=40, n_test=20)
    models = init_population("lenet5", 2, in_channels=1, num_classes=10, seed=1)
    seen = []
    models[0].register_forward_pre_hook(
        lambda module, args: seen.append((module.training, torch.is_autocast_enabled("cpu"),
                                          args[0].dtype)))
    train_population(models, data, training=TrainConfig(epochs=1, batch_size=20, optimizer="adam",
                                                        lr=1e-3),
                     linking=None, adversarial=None, seed=1, device=torch.device("cpu"),
                     progress=False, diversity=diversity("dverge"),
                     execution=ExecutionConfig(precision="bf16"))
    training = [(on, dtype) for was_training, on, dtype in seen if was_training]
    # per minibatch: steps × (source + target) distillation forwards, m − 1 shifted, 1 clean
    assert len(training) == 2 * (2 * KNOBS["dverge"]["steps"] + 1 + 1)
    assert all(on for on, _ in training), training
    assert {dtype for _, dtype in training} == {torch.float32}
