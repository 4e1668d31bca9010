"""Bring your own architecture and population (issue 28): every problem with a factory or a
weights file is one line, exit 2, nothing compiled or run."""

from __future__ import annotations

import itertools
import textwrap

import pytest
import torch

from clmrepro.cli import main

torch.set_num_threads(1)
_names = itertools.count()

MLP = textwrap.dedent('''
    from torch import nn

    def build(hidden=8, classes=10, flat=True):
        if not flat:
            return nn.Sequential(nn.Conv2d(1, 2, 3))          # (N, 2, 30, 30): not logits
        return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, hidden), nn.ReLU(),
                             nn.Linear(hidden, classes))
''')


def spec(architecture: str, population: str = "{id: ulm, size: 2, regime: {kind: ulm}}") -> str:
    return textwrap.dedent(f"""
        name: byo
        seed: 0
        experiments:
          - id: mnist
            dataset: {{name: mnist-5k, n_train: 200, n_test: 100}}
            architecture: {architecture}
            populations:
              - {population}
            evaluation:
              n_samples: 20
              attacks:
                - {{kind: fgsm, eps: [0.3]}}
        """)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory holding a factory module of a fresh name; returns that name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"byo_models_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(MLP)
    return name


def refused(capsys, text: str, path="byo.yaml") -> list[str]:
    with open(path, "w") as handle:
        handle.write(text)
    assert main(["validate", path]) == 2
    assert main(["compile", path]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    from pathlib import Path
    assert not Path("workflow/compiled/byo").exists()   # nothing compiled
    return lines


def test_a_fitting_factory_validates(here, capsys):
    with open("byo.yaml", "w") as handle:
        handle.write(spec(f'{{kind: python, factory: "{here}:build", kwargs: {{hidden: 4}}}}'))
    assert main(["validate", "byo.yaml"]) == 0


@pytest.mark.parametrize("factory, kwargs, fragment", [
    ("no_such_module_xyz:build", "{}", "cannot import 'no_such_module_xyz'"),
    ("{here}:missing", "{}", "has no function 'missing'"),
    ("{here}:build", "{flat: false}", "returns (2, 2, 30, 30) for 2 images; expected (2, 10)"),
    ("{here}:build", "{classes: 5}", "returns 5 classes; the dataset has 10"),
    ("{here}:build", "{nope: 1}", "failed to build with kwargs {'nope': 1}"),
])
def test_a_factory_that_does_not_fit_is_one_line(here, capsys, factory, kwargs, fragment):
    factory = factory.format(here=here)
    lines = refused(capsys, spec(f'{{kind: python, factory: "{factory}", kwargs: {kwargs}}}'))
    # once for validate, once for compile: one line each time
    assert len(lines) == 2 and all(fragment in line for line in lines), lines
    assert all("architecture.factory" in line for line in lines)


def _weights(here, *, members=2, hidden=8, nan=False):
    module = __import__(here)
    states = []
    for k in range(members):
        torch.manual_seed(k)
        state = module.build(hidden=hidden).state_dict()
        if nan:
            state["1.weight"][0, 0] = float("nan")
        states.append(state)
    return states


def pretrained(here, weights="weights.pt", size=2):
    return spec(f'{{kind: python, factory: "{here}:build"}}',
                f"{{id: yours, size: {size}, regime: {{kind: pretrained, weights: {weights}}}}}")


def test_fitting_weights_validate_and_compile_with_their_sha256(here, capsys):
    import hashlib
    import json
    torch.save(_weights(here), "weights.pt")
    with open("byo.yaml", "w") as handle:
        handle.write(pretrained(here))
    assert main(["compile", "byo.yaml"]) == 0
    job = json.loads(open("workflow/compiled/byo/jobs/attack-mnist-yours-fgsm-0.3.json").read())
    assert job["inputs"]["population"] == "weights.pt"
    assert job["inputs"]["factory"] == f"{here}.py"   # editing it reruns the jobs
    assert job["params"]["population"]["sha256"] == hashlib.sha256(
        open("weights.pt", "rb").read()).hexdigest()
    assert not any(job["job"]["id"].startswith("train-") for job in
                   json.loads(open("workflow/compiled/byo/plan.json").read())["jobs"])
    dvc = open("workflow/compiled/byo/dvc.yaml").read()
    assert f"- {here}.py" in dvc and "- weights.pt" in dvc


@pytest.mark.parametrize("make, fragment", [
    (lambda here: _weights(here, members=1), "holds 1 member(s), but the spec's population has "
                                             "size 2"),
    (lambda here: _weights(here, hidden=16), "member 0 does not fit"),
    (lambda here: _weights(here, nan=True), "member 0 has NaN or infinite values in 1.weight"),
])
def test_weights_that_do_not_fit_are_one_line(here, capsys, make, fragment):
    torch.save(make(here), "weights.pt")
    lines = refused(capsys, pretrained(here))
    assert len(lines) == 2 and all(fragment in line for line in lines), lines


class RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_that_runs_code_is_refused_and_not_run(here, capsys):
    import pickle
    from pathlib import Path
    with open("weights.pt", "wb") as handle:
        pickle.dump([RunsCode()], handle)
    lines = refused(capsys, pretrained(here))
    assert len(lines) == 2 and all("loading it would run code" in line for line in lines), lines
    assert not Path("pwned.txt").exists()


def test_a_folder_of_member_files_is_read_in_name_order(here, capsys):
    from pathlib import Path
    from clmrepro.core.external import external_states
    Path("members").mkdir()
    states = _weights(here, members=3)
    for k, state in enumerate(states):
        torch.save(state, f"members/m{k}.pt")
    read = external_states("members")
    assert [torch.equal(a["1.weight"], b["1.weight"]) for a, b in zip(read, states)] == [True] * 3
    with open("byo.yaml", "w") as handle:
        handle.write(pretrained(here, weights="members", size=3))
    assert main(["validate", "byo.yaml"]) == 0


def test_evaluate_writes_the_standard_spec_and_keeps_an_existing_one(here, capsys,
                                                                     monkeypatch):
    import clmrepro.cli as cli
    from clmrepro.spec import load_spec
    torch.save(_weights(here), "weights.pt")
    ran = []
    monkeypatch.setattr(cli, "cmd_run", lambda args: ran.append(args.spec) or 0)
    assert main(["evaluate", f"{here}:build", "--weights", "weights.pt", "--dataset",
                 "mnist-5k", "--name", "mine", "--samples", "50"]) == 0
    assert ran == ["specs/mine.yaml"]
    spec_ = load_spec("specs/mine.yaml")
    (experiment,) = spec_.experiments
    assert experiment.populations[0].size == 2
    kinds = [a.kind for a in experiment.evaluation.attacks]
    assert kinds == ["fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd", "arc"]
    assert experiment.evaluation.sanity is not None
    assert "reports/mine/report.html" in capsys.readouterr().out
    assert main(["evaluate", f"{here}:build", "--weights", "weights.pt", "--dataset",
                 "mnist-5k", "--name", "mine"]) == 2
    assert "exists" in capsys.readouterr().err
