"""The zero-gradient check (clmrepro.kinds.checks.zero_gradient) flips on the constructed cases
of issue 26: it counts only the images the attacked model classifies correctly (a misclassified
image whose true class ranks third has a constant DLR loss without any masking), and it sees the
cross-entropy saturation of a population whose logits are scaled ×1000, which the DLR loss
alone (scale free) cannot."""

from __future__ import annotations

import torch
from torch import nn

from clmrepro.core.attacks.sanity import Target, dlr_loss, zero_gradients
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds.checks import zero_gradient
from clmrepro.kinds.checks.base import Population
from clmrepro.reporting.sanity import KIT

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))


def input_gradient_is_zero(target: Target, x, y, kind: str) -> list[bool]:
    leaf = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(target.loss(leaf, y, kind=kind).sum(), leaf)[0]
    return (grad.flatten(1).abs().sum(1) == 0).tolist()


def test_a_misclassified_image_is_not_counted():
    """nn.Linear(4, 3) with bias (0, 5, 2), labels (0, 1): image 0 is misclassified with its
    true class third, so its DLR loss is the constant 1 and its DLR gradient exactly 0; the
    rule before issue 26 counted it ("1 of 2"), AutoAttack's rule checks only image 1."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.0, 5.0, 2.0]))
    x, y = torch.rand(2, 4, generator=generator(0)), torch.tensor([0, 1])
    target = Target([layer], CPU)
    assert dlr_loss(layer(x), y)[0].item() == 1.0
    assert input_gradient_is_zero(target, x, y, "dlr") == [True, False]   # the old count: 1
    found = zero_gradients(target, x, y, 0.1, generator(1))
    assert found == {"of": 1, "images": 0, "ce/clean": 0, "dlr/clean": 0, "ce/random": 0,
                     "dlr/random": 0}


def members(scale: float, offsets=(-0.5, 2.0, 3.0)) -> list[nn.Module]:
    """Three 3-class linear members on 4×4 images: logits (16·mean(x) − 8 + c, 0, −1) with
    c = −0.5, 2, 3, all times ``scale``: member 0 is right only where mean(x) > 0.53125."""
    out = []
    for c in offsets:
        layer = nn.Linear(16, 3)
        with torch.no_grad():
            layer.weight.copy_(scale * torch.stack([torch.ones(16), torch.zeros(16),
                                                    torch.zeros(16)]))
            layer.bias.copy_(scale * torch.tensor([-8.0 + c, 0.0, -1.0]))
        out.append(nn.Sequential(nn.Flatten(), layer).eval())
    return out


def images(n: int = 40):
    """Images whose means spread over [0.45, 0.60]: member 0 wrong on the lower ones."""
    means = torch.linspace(0.45, 0.60, n).view(n, 1, 1, 1)
    return means + 0.01 * (torch.rand(n, 1, 4, 4, generator=generator(2)) - 0.5)


def test_the_expected_cross_entropy_of_a_population_times_1000_is_counted():
    """3 members, logits ×1000: on every image all three members classify correctly the
    softmaxes are one-hot and the expected cross-entropy's gradient is exactly 0 (PGD stands
    still); the DLR loss, scale free, has a gradient everywhere, so the rule before issue 26
    counted 0."""
    x = images()
    y = torch.zeros(len(x), dtype=torch.long)
    scaled = Target(members(1000.0), CPU)
    all_right = torch.stack([(m(x).argmax(1) == 0) for m in scaled.models]).all(0)
    assert 0 < int(all_right.sum()) < len(x)               # most, not all
    assert not any(input_gradient_is_zero(scaled, x, y, "dlr"))   # the old count: 0 of 40
    found = zero_gradients(scaled, x, y, 0.02, generator(3))
    assert found["of"] == len(x)          # some member is right on every image
    assert found["ce/clean"] == int(all_right.sum()) and found["dlr/clean"] == 0
    assert found["images"] >= found["ce/clean"] and found["ce/random"] > 0
    # unscaled: the same predictions, no zero gradient anywhere
    plain = zero_gradients(Target(members(1.0), CPU), x, y, 0.02, generator(3))
    assert plain["images"] == 0 and plain["of"] == len(x)


def section(counts: dict) -> dict:
    return zero_gradient.section({}, counts, 40)


def test_the_report_flags_any_counted_image_and_reads_older_files():
    clean = {"of": 40, "images": 0, "ce/clean": 0, "dlr/clean": 0, "ce/random": 0,
             "dlr/random": 0}
    masked = {**clean, "images": 33, "ce/clean": 33, "ce/random": 31}

    def verdict(*found):
        files = [{"threat_models": {"adaptive": {"attacks": {}, **f}}} for f in found]
        return zero_gradient.verdict(Population("e", "p", "ulm", [], files), "adaptive", KIT)

    measures, _ = verdict(section(clean), section(clean))
    assert not any(m.flags for m in measures) and measures[0].of == 80
    measures, _ = verdict(section(masked), section(clean))
    assert [(m.value, m.flags) for m in measures] == [
        (33, True), (33, True), (0, False), (31, True), (0, False)]
    assert measures[1].label == "zero cross-entropy gradient at the clean point"
    # a check file from before issue 26: one count, DLR at the clean point
    old = {"zero_gradient": {"loss": "dlr", "images": 1, "of": 40}}
    (measure,), _ = verdict(old)
    assert measure.flags and "DLR" in measure.label
    assert "paper" not in zero_gradient.rule("adaptive", [])
    assert "expected cross-entropy" in zero_gradient.rule("adaptive", [])
    assert "crafting submodel's cross-entropy" in zero_gradient.rule("paper", [])


def test_the_plan_sizes_the_section_from_one_number():
    out = zero_gradient.section({}, 100, 100)["zero_gradient"]
    assert out["by"] == {"ce": {"clean": 100, "random": 100},
                         "dlr": {"clean": 100, "random": 100}}
    assert (out["images"], out["of"], out["n"]) == (100, 100, 100)
