"""The regime registry (clmrepro.kinds.regimes): one module per kind with its whole interface,
the knobs each resolves into a job's params, its training configs, and its warnings."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from clmrepro.kinds import regimes
from clmrepro.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]
INTERFACE = ("KIND", "LABEL", "MODEL", "BASELINE", "PAPER_SIZE", "SOURCE", "LINKED",
             "ADVERSARIAL", "CIFAR_EPOCHS_OPEN", "params", "reference", "train_configs", "price",
             "warnings")


@pytest.mark.parametrize("module", regimes.MODULES, ids=lambda m: m.KIND)
def test_every_regime_module_holds_the_whole_interface(module):
    missing = [name for name in INTERFACE if not hasattr(module, name)]
    assert not missing, f"{module.__name__} lacks {missing}"
    # the spec model's discriminator is the module's kind
    assert typing.get_args(module.MODEL.model_fields["kind"].annotation) == (module.KIND,)
    assert regimes.get(module.KIND) is module
    # a baseline cites its source and trains a joint loss; a paper regime has the paper's size
    if module.BASELINE:
        assert module.SOURCE and module.PAPER_SIZE is None and callable(module.joint_loss)
    elif not regimes.trained(module.KIND):   # your own weights (issue 28): no training
        assert module.SOURCE and module.PAPER_SIZE is None and module.MIN_SIZE == 1
        with pytest.raises(ValueError, match="not trained"):
            module.train_configs({})
    else:
        assert module.SOURCE is None and module.PAPER_SIZE in (4, 10)
    assert module.MIN_SIZE in (1, 2)


def test_the_registry_lists_each_kind_once_in_the_spec_language_order():
    assert regimes.REGIME_KINDS == ("ulm", "clm", "ulm-adv", "clm-adv", "adp", "gal", "trs",
                                    "dverge", "pretrained")
    assert regimes.BASELINE_KINDS == ("adp", "gal", "trs", "dverge")
    with pytest.raises(ValueError, match=r"unknown regime kind 'clm-advv'; known: ulm, clm, "):
        regimes.get("clm-advv")


def test_importing_the_registry_imports_neither_torch_nor_the_spec_package():
    code = ("import sys, clmrepro.kinds.regimes; "
            "print('torch' in sys.modules, 'clmrepro.spec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]


def resolved(kind: str, mnist: bool, architecture: str = "lenet5", **knobs) -> dict:
    module = regimes.get(kind)
    return module.params(module.MODEL.model_validate({"kind": kind, **knobs}), mnist=mnist,
                         architecture=architecture)


@pytest.mark.parametrize("kind, mnist, linking", [
    ("clm", True, {"alpha": 0.1, "delta": 0.1, "prse_every": 10}),       # paper §3
    ("clm", False, {"alpha": 0.5, "delta": 0.1, "prse_every": 10}),
    ("clm-adv", True, {"alpha": 0.01, "delta": 0.005, "prse_every": 1}),  # authors' runs
    ("clm-adv", False, {"alpha": 0.1, "delta": 0.05, "prse_every": 10}),
])
def test_linking_defaults_per_dataset(kind, mnist, linking):
    blocks = resolved(kind, mnist, "lenet5" if mnist else "resnet18")
    assert blocks["linking"] == {**linking, "mask": "shared", "layer": "conv1"}
    assert blocks["diversity"] is None


def test_adversarial_defaults_per_dataset_and_set_knobs_win():
    assert resolved("ulm-adv", True)["adversarial"] == {"eps": 0.3, "alpha": 0.01, "steps": 100,
                                                        "random_start": True}
    assert resolved("clm-adv", False, "resnet18")["adversarial"] == {
        "eps": 8 / 255, "alpha": 2 / 255, "steps": 20, "random_start": True}
    set_ = resolved("ulm-adv", True, adversarial={"steps": 7, "random_start": False})
    assert set_["adversarial"]["steps"] == 7 and set_["adversarial"]["random_start"] is False
    assert resolved("ulm", True) == {"linking": None, "adversarial": None, "diversity": None}


def test_baseline_defaults_per_dataset_and_architecture():
    assert resolved("adp", True)["diversity"] == {"method": "adp", "alpha": 2.0, "beta": 0.5,
                                                  "log_offset": 1e-20, "det_offset": 1e-6}
    assert resolved("gal", True, lam=0.25)["diversity"] == {"method": "gal", "lam": 0.25}
    assert resolved("trs", True, steps=3)["diversity"]["steps"] == 3
    mnist = resolved("dverge", True)["diversity"]
    assert (mnist["eps"], mnist["step_size"], mnist["steps"]) == (0.35, 0.035, 10)
    assert mnist["layers"] == ["bn1", "bn2", "bn3"]
    cifar = resolved("dverge", False, "resnet18")["diversity"]
    assert (cifar["eps"], cifar["step_size"]) == (0.07, 0.007) and len(cifar["layers"]) == 8
    assert resolved("dverge", False, "resnet18", layer="layer2.1")["diversity"]["layers"] == \
        ["layer2.1"]


def test_reference_resets_only_the_knobs_the_paper_sets():
    clm = regimes.get("clm-adv").MODEL.model_validate(
        {"kind": "clm-adv", "from": "u", "alpha": 0.5, "mask": "per-weight",
         "adversarial": {"steps": 3}})
    reference = regimes.get("clm-adv").reference(clm)
    assert (reference.alpha, reference.delta, reference.prse_every) == (None, None, None)
    assert reference.adversarial.steps is None
    assert reference.mask == "per-weight" and reference.from_ == "u"  # reported on their own


def test_train_configs_give_baselines_their_loss_and_refuse_a_loss_a_regime_lacks():
    configs = regimes.get("dverge").train_configs(
        {"diversity": {"method": "dverge", "eps": 0.3, "step_size": 0.03, "steps": 2,
                       "layers": ["bn1"]}})
    diversity = configs["diversity"]
    assert diversity.method == "dverge" and diversity.params["layers"] == ["bn1"]
    assert diversity.loss is regimes.get("dverge").joint_loss and diversity.target_order
    assert configs["linking"] is None and configs["adversarial"] is None
    assert not regimes.get("adp").train_configs(
        {"diversity": {"method": "adp", **regimes.get("adp").DEFAULTS}})["diversity"].target_order
    clm = regimes.get("clm").train_configs(
        {"linking": {"alpha": 0.1, "delta": 0.1, "prse_every": 10}, "adversarial": None})
    assert clm["linking"].alpha == 0.1 and clm["diversity"] is None
    with pytest.raises(ValueError, match="regime 'ulm' trains no joint loss"):
        regimes.get("ulm").train_configs({"population": {"regime": "ulm"},
                                          "diversity": {"method": "adp"}})


def test_trs_radius_grows_linearly_and_dverge_draws_its_layer_from_the_seed():
    knobs = {"init_eps": 0.1, "adv_eps": 0.2}
    assert [regimes.get("trs").radius(knobs, e, 4) for e in range(4)] == \
        pytest.approx([0.1, 0.125, 0.15, 0.175])
    layers = {"layers": ["bn1", "bn2", "bn3"]}
    drawn = [regimes.get("dverge").layer(layers, 7, epoch) for epoch in range(40)]
    assert drawn == [regimes.get("dverge").layer(layers, 7, epoch) for epoch in range(40)]
    assert set(drawn) == {"bn1", "bn2", "bn3"}
    assert regimes.get("dverge").layer({"layers": ["bn2"]}, 7, 0) == "bn2"


# --- ADP's degenerate log-det (issue 26, Build item 5) ------------------------------------

def population(kind: str, size: int):
    return type("Population", (), {"size": size, "id": kind})()


def test_adp_warns_with_as_many_members_as_classes_or_more():
    adp = regimes.get("adp")
    assert adp.warnings(population("adp", 9), 10) == []
    (ten,) = adp.warnings(population("adp", 10), 10)
    assert "singular" in ten and "10 normalised non-true predictions in 9 dimensions" in ten
    assert adp.warnings(population("adp", 3), 3) and not adp.warnings(population("adp", 2), 3)
    for module in regimes.MODULES:
        if module is not adp:
            assert module.warnings(population(module.KIND, 100), 10) == []


def test_the_gram_matrix_adp_warns_about_is_singular_exactly_from_n_classes_members():
    """The warning's claim: n normalised non-true prediction vectors of n_classes − 1
    entries give a singular n × n Gram matrix once n ≥ n_classes, never below."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    for n in (3, 9, 10, 12):
        p = torch.rand(n, 9, generator=gen, dtype=torch.float64)
        unit = p / p.norm(dim=-1, keepdim=True)
        rank = int(torch.linalg.matrix_rank(unit @ unit.T))
        assert rank == min(n, 9)
        assert (rank < n) == (n >= 10)


SPEC = """
name: w
experiments:
  - id: mnist
    dataset: {name: mnist-5k}
    architecture: lenet5
    populations:
      - {id: ulm, size: 10, regime: {kind: ulm}}
      - id: adp
        size: {size}
        regime: {kind: adp}
    evaluation:
      attacks: [{kind: fgsm, eps: [0.3]}]
"""


def test_a_loaded_spec_carries_the_warning_at_the_population_line():
    assert parse_spec(SPEC.replace("{size}", "9"), "w.yaml").warnings == []
    (line,) = parse_spec(SPEC.replace("{size}", "10"), "w.yaml").warnings
    assert re.match(r"w\.yaml:10 experiments\[0\]\.populations\[1\]\.size: warning: "
                    r"population 'adp': adp with 10 members on 10 classes", line)


def test_validate_prints_the_warning_and_still_accepts_the_spec():
    result = subprocess.run([sys.executable, "-m", "clmrepro.cli", "validate",
                             "specs/baselines-mnist5k.yaml"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "baselines-mnist5k.yaml: ok" in result.stdout
    assert "population 'adp': adp with 10 members on 10 classes" in result.stderr


# --- no regime is chosen by its name outside its module ---------------------------------

# Files that still spell regime kinds, and why (everything else looks kinds up in the registry):
SPELLED = {
    # the paper's claims name the regimes they compare (paper §4, Tables 1-5)
    "clmrepro/reporting/claims.py",
    # the report's rows and labels (could read the modules' LABEL; reporting's own change)
    "clmrepro/reporting/paper.py",
    # "CLM beats X": the baselines are compared with the paper's method by name
    "clmrepro/reporting/baselines.py",
    # the training record's label from the configs a run was given (core sees no registry)
    "clmrepro/core/training/loop.py",
}
KIND_STRING = re.compile(r"""["'](ulm|clm|ulm-adv|clm-adv|adp|gal|trs|dverge)["']""")


def test_regime_kinds_are_spelled_only_in_their_modules():
    found = set()
    for path in (ROOT / "clmrepro").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("clmrepro/kinds/regimes/"):
            continue
        if KIND_STRING.search(path.read_text(encoding="utf-8")):
            found.add(rel)
    assert found <= SPELLED, f"regime kinds spelled in {sorted(found - SPELLED)}"
