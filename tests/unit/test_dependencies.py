"""The locked environment: no package below a version with a known advisory, and every
torchattacks attack we use still imports and runs (it is installed without its dependencies,
since it declares requests~=2.25.1; Makefile, `make venv`)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

# package -> (lowest version without the advisories, advisory ids)
FLOORS = {
    "requests": ("2.32.4", ["CVE-2023-32681", "CVE-2024-35195", "CVE-2024-47081"]),
    "idna": ("3.7", ["CVE-2024-3651"]),
    # held at 1.26.x by requests 2.25.1 too: 1.22-2.6.2 affected by CVE-2026-21441, 2.6.x
    # by CVE-2026-44432 (fixed in 2.7.0)
    "urllib3": ("2.7.0", ["CVE-2026-21441", "CVE-2026-44432"]),
}


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        name, sep, pinned = line.strip().partition("==")
        if sep and not name.startswith("#"):
            pins[name.lower()] = pinned
    return pins


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_lock_holds_no_version_below_its_floor(package):
    floor, advisories = FLOORS[package]
    pins = locked()
    assert package in pins, f"{package} is not in requirements.lock"
    assert Version(pins[package]) >= Version(floor), \
        f"requirements.lock: {package}=={pins[package]} is below {floor} ({', '.join(advisories)})"


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_installed_version_is_the_locked_one(package):
    # `make venv` installs the lock exactly; a stale .venv would hide an old version
    assert version(package) == locked()[package]


def test_torchattacks_is_locked_at_the_version_whose_defaults_we_pass():
    assert locked()["torchattacks"] == "3.5.1" == version("torchattacks")


@pytest.fixture(scope="module")
def tiny():
    """A linear classifier on 1x32x32 inputs and 8 images it mostly gets right."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10)).eval()
    x = torch.rand(8, 1, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)                        # every clean prediction correct
    return model, x, y


def attacks(model):
    import torchattacks

    eps = 0.3
    common = dict(norm="Linf", eps=eps, seed=0, verbose=False)
    built = {
        "FGSM": torchattacks.FGSM(model, eps=eps),
        "PGD": torchattacks.PGD(model, eps=eps, alpha=0.1, steps=3, random_start=True),
        "MIFGSM": torchattacks.MIFGSM(model, eps=eps, alpha=0.1, steps=3, decay=1.0),
        "EOTPGD": torchattacks.EOTPGD(model, eps=eps, alpha=0.1, steps=3, eot_iter=2,
                                      random_start=True),
        "APGD": torchattacks.APGD(model, steps=3, n_restarts=1, loss="ce", eot_iter=1,
                                  rho=0.75, **common),
        "APGDT": torchattacks.APGDT(model, steps=3, n_restarts=1, eot_iter=1, rho=0.75,
                                    n_classes=10, **common),
        "FAB": torchattacks.FAB(model, steps=3, n_restarts=1, alpha_max=0.1, eta=1.05,
                                beta=0.9, multi_targeted=True, n_classes=10, **common),
        "Square": torchattacks.Square(model, n_queries=20, n_restarts=1, p_init=0.8,
                                      loss="margin", resc_schedule=True, **common),
    }
    built["MultiAttack"] = torchattacks.MultiAttack([built["APGD"], built["Square"]])
    return eps, built


def test_every_torchattacks_attack_we_use_runs_on_a_tiny_model(tiny):
    model, x, y = tiny
    eps, built = attacks(model)
    fooled = {}
    for name, attack in built.items():
        torch.manual_seed(1)
        x_adv = attack(x, y).detach()
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype, name
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0, name
        assert float((x_adv - x).abs().max()) <= eps + 1e-6, name
        with torch.no_grad():
            fooled[name] = int((model(x_adv).argmax(1) != y).sum())
    # eps 0.3 on 1,024 free pixels of a linear model: the gradient attacks fool it outright
    assert all(fooled[name] == len(y) for name in ("FGSM", "PGD", "MIFGSM", "EOTPGD", "APGD")), fooled
    assert fooled["MultiAttack"] >= fooled["APGD"]
