"""Issue 26, Build item 3: a population whose logits are scaled ×1000 (the same predictions,
so the same true robustness; the cross-entropy saturates and its input gradient is exactly 0)
is flagged by the zero-gradient and the loss-function checks under the paper protocol and the
adaptive threat model, run as the sanity job runs them (core.attacks.sanity.check_threat, the
check file decoded and judged by reporting.sanity); the unscaled population passes both.  The
population is constructed, so the test is deterministic: three 3-class linear members on 4×4
images, right on every test image and each broken by ε ≤ 0.19."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.sanity import PgdSettings, SanitySettings, check_threat
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds import checks as check_kinds
from clmrepro.reporting.sanity import FLAG, PASS, decode_check_file, run_checks

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))
EPS, ALPHA, STEPS = 0.3, 0.05, 10
CHECKS = ["zero-gradient", "margin-loss"]


def population(scale: float) -> list[nn.Module]:
    """Logits (16·mean(x) − 8 + c, 0, −1) with c = 1, 2, 3, all times ``scale``."""
    members = []
    for c in (1.0, 2.0, 3.0):
        layer = nn.Linear(16, 3)
        with torch.no_grad():
            layer.weight.copy_(scale * torch.stack([torch.ones(16), torch.zeros(16),
                                                    torch.zeros(16)]))
            layer.bias.copy_(scale * torch.tensor([-8.0 + c, 0.0, -1.0]))
        members.append(nn.Sequential(nn.Flatten(), layer).eval())
    return members


def check_file(models, threat: str) -> dict:
    x = 0.5 + 0.02 * torch.rand(8, 1, 4, 4, generator=generator(0))
    y = torch.zeros(8, dtype=torch.long)
    params = {"checks": CHECKS, "threat_models": [threat], "samples": 8, "eps": EPS,
              "pgd": {"alpha": ALPHA, "steps": STEPS, "random_start": False},
              "margin_points": 1.0}
    settings = SanitySettings(jobs=check_kinds.jobs(CHECKS), threat_models=(threat,),
                              pgd=PgdSettings(EPS, ALPHA, STEPS, False), params=params,
                              crafting="per-batch", batch_size=4)
    section = check_threat(models, x, y, threat=threat, settings=settings, seed=0,
                           runtime=CPU, crafters=torch.tensor([0, 0, 0, 0, 2, 2, 2, 2]))
    return {"schema_version": 1, "experiment": "toy", "population": "ulm", "regime": "ulm",
            "replicate": 0, "n_submodels": 3, "eps": EPS, "n_samples": 8, "checks": CHECKS,
            "threat_models": {threat: section}}


def verdicts(models, threat: str) -> dict[str, str]:
    results = run_checks([], [decode_check_file(check_file(models, threat))])
    return {r.check: r.verdict for r in results if r.threat_model == threat}


@pytest.mark.parametrize("threat", ["paper", "adaptive"])
def test_logits_times_1000_are_flagged_and_the_unscaled_population_passes(threat):
    scaled, plain = population(1000.0), population(1.0)
    x = 0.5 + 0.02 * torch.rand(8, 1, 4, 4, generator=generator(0))
    assert all(torch.equal(a(x).argmax(1), b(x).argmax(1)) for a, b in zip(scaled, plain))
    masked = verdicts(scaled, threat)
    assert masked["zero-gradients"] == FLAG and masked["loss-function"] == FLAG
    clean = verdicts(plain, threat)
    assert clean["zero-gradients"] == PASS and clean["loss-function"] == PASS
    counts = check_file(scaled, threat)["threat_models"][threat]["zero_gradient"]
    # every image right and saturated: the cross-entropy's gradient is 0 at both points, the
    # DLR loss's nowhere (scale free)
    assert counts["by"] == {"ce": {"clean": 8, "random": 8}, "dlr": {"clean": 0, "random": 0}}
