"""execution.max_models (issue 30): a batched population stepped in smaller stacks is the
same training (each submodel's minibatches, order and optimiser as planned), within float
rounding; and a resumed capped run is bit-identical to an uninterrupted one."""

import pytest
import torch

from clmrepro.core.data import load_dataset
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.training.config import ExecutionConfig, LinkingConfig, TrainConfig
from clmrepro.core.training.loop import groups, init_population, train_population
from clmrepro.core.training.step import StackedTrainee

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k", n_train=120, n_test=40)


def run(data, execution, *, dtype=torch.float64, linking=None, **kw):
    models = [m.to(dtype) for m in init_population("lenet5", 3, in_channels=1, num_classes=10,
                                                   seed=4)]
    record = train_population(models, data, training=TrainConfig(epochs=1, batch_size=20,
                                                                 optimizer="adam", lr=1e-3),
                              linking=linking, adversarial=None, seed=4, device=CPU,
                              progress=False, execution=execution, **kw)
    return models, record


def test_groups_cover_every_submodel_once():
    assert groups(5, None) == [range(0, 5)]
    assert groups(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert groups(3, 10) == [range(0, 3)]


def test_max_models_must_be_positive():
    with pytest.raises(ValueError, match="max_models"):
        ExecutionConfig(max_models=0)


@pytest.mark.parametrize("linking", [None, LinkingConfig(alpha=0.1, delta=0.1, prse_every=2)],
                         ids=["ulm", "clm-lockstep"])
def test_stacks_of_two_train_what_one_stack_of_three_trains(mnist, linking, monkeypatch):
    stacks = []
    real_init = StackedTrainee.__init__

    def spy(self, models, members, *args, **kwargs):
        stacks.append(members)
        real_init(self, models, members, *args, **kwargs)

    monkeypatch.setattr(StackedTrainee, "__init__", spy)
    whole, rec_whole = run(mnist, ExecutionConfig(population="batched", clm_schedule="lockstep"),
                           linking=linking)
    assert stacks == [range(0, 3)]
    stacks.clear()
    capped, rec_capped = run(mnist, ExecutionConfig(population="batched", clm_schedule="lockstep",
                                                    max_models=2), linking=linking)
    assert stacks == [range(0, 2), range(2, 3)]
    for a, b in zip(whole, capped):
        for name, value in a.state_dict().items():
            assert torch.allclose(value, b.state_dict()[name], rtol=0, atol=1e-10), name
    assert rec_whole["test_accuracy"] == rec_capped["test_accuracy"]
    if linking is not None:
        assert rec_whole["prse"]["examinations"] == rec_capped["prse"]["examinations"]


def test_a_capped_run_resumes_bit_identically(mnist, tmp_path):
    execution = ExecutionConfig(population="batched", max_models=2)
    reference, _ = run(mnist, execution, dtype=torch.float32)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(Interrupted):
        run(mnist, execution, dtype=torch.float32, state_dir=tmp_path,
            should_stop=stop_after_three, state_every_s=1e9)
    where = []
    resumed, _ = run(mnist, execution, dtype=torch.float32, state_dir=tmp_path,
                     on_resume=lambda progress: where.append(progress.batch))
    assert where == [3]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k])
               for a, b in zip(reference, resumed) for k in a.state_dict())
