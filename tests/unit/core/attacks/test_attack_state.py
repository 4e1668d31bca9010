"""Chunked, resumable crafting (issue 12): the store, the chunk loop, independent units."""

import pytest
import torch

from clmrepro.core.attacks.adaptive import AdaptiveExecutor
from clmrepro.core.attacks.kinds import PerturbationError
from clmrepro.core.attacks.sequential import SequentialExecutor
from clmrepro.core.attacks.state import ChunkStore, file_digest, tensor_digest
from clmrepro.core.attacks.work import (
    adaptive_units,
    assemble,
    chunked,
    craft_chunks,
    paper_units,
    transfer_units,
)
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.models import LeNet5
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds.attacks import get

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))


def population(n=2):
    torch.manual_seed(0)
    return [LeNet5(in_channels=1).eval() for _ in range(n)]


def data(n=12):
    x = torch.rand(n, 1, 32, 32, generator=generator(1))
    return x, torch.randint(10, (n,), generator=generator(2))


class Counting:
    """An executor that shifts each unit's samples by a unit-specific legal amount."""

    def __init__(self, x):
        self.x, self.calls = x, 0

    def __call__(self, chunk):
        self.calls += 1
        return [(self.x[u.index] + 0.01 * (u.seed % 3)).clamp(0, 1) for u in chunk]


def test_store_round_trip_and_stale_fingerprints_are_dropped(tmp_path):
    store = ChunkStore(tmp_path / "state", {"a": 1})
    assert store.load("paper-00000") is None
    tensors = [torch.arange(6.0).view(2, 3), torch.ones(1, 3)]
    store.save("paper-00000", tensors)
    again = ChunkStore(tmp_path / "state", {"a": 1}).load("paper-00000")
    assert all(torch.equal(a, b) for a, b in zip(again, tensors))
    assert store.names() == ["paper-00000"]
    other = ChunkStore(tmp_path / "state", {"a": 2})  # a changed job: the old work is stale
    assert other.load("paper-00000") is None
    assert not (tmp_path / "state" / store.key).exists()
    other.remove()
    assert not (tmp_path / "state").exists()


def test_store_recomputes_an_unreadable_chunk(tmp_path):
    store = ChunkStore(tmp_path, {"a": 1})
    store.save("t-00000", [torch.ones(2)])
    path = tmp_path / store.key / "t-00000.pt"
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert store.load("t-00000") is None


def test_digests_see_every_byte(tmp_path):
    a = torch.zeros(3, 2)
    b = a.clone()
    b[2, 1] = 1e-30
    assert tensor_digest(a) != tensor_digest(b)
    assert tensor_digest(a) != tensor_digest(a.view(2, 3))
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    d = file_digest(f)
    f.write_bytes(b"abd")
    assert file_digest(f) != d


def test_chunk_loop_resumes_from_saved_chunks_and_stops_on_request(tmp_path):
    x, _ = data(12)
    units = transfer_units(2, 12, batch_size=4, seed=0)
    chunks = chunked(units, 2)
    full = Counting(x)
    want = craft_chunks("transfer", chunks, full, x=x, eps=0.1)
    assert full.calls == 3

    store = ChunkStore(tmp_path, {"job": 1})
    first = Counting(x)
    with pytest.raises(Interrupted) as stopped:
        craft_chunks("transfer", chunks, first, x=x, eps=0.1, store=store,
                     should_stop=lambda: True)
    assert stopped.value.saved == store.where and first.calls == 1
    assert store.names() == ["transfer-00000"]

    resumed = Counting(x)
    got = craft_chunks("transfer", chunks, resumed, x=x, eps=0.1,
                       store=ChunkStore(tmp_path, {"job": 1}))
    assert resumed.calls == 2  # the saved chunk was not crafted again
    assert all(torch.equal(a, b) for ca, cb in zip(want, got) for a, b in zip(ca, cb))
    out = assemble(chunks, got, torch.empty((2, *x.shape)), by_crafter=True)
    assert torch.equal(out[1, 4:8], want[1][1])


def test_chunk_loop_refuses_an_illegal_chunk_before_saving_it(tmp_path):
    x, _ = data(4)
    store = ChunkStore(tmp_path, {"job": 1})
    chunks = chunked(adaptive_units(4, batch_size=2, seed=0), 1)
    with pytest.raises(PerturbationError):
        craft_chunks("adaptive", chunks, lambda c: [x[u.index] + 0.5 for u in c], x=x,
                     eps=0.1, store=store)
    assert store.names() == []


def test_units_cover_every_sample_once_per_crafter():
    crafters = torch.tensor([0, 0, 2, 2, 1, 1, 0, 2, 0])
    units = paper_units(crafters, 3, batch_size=2, seed=5)
    seen = torch.cat([u.index for u in units]).sort().values
    assert torch.equal(seen, torch.arange(9))
    assert all(bool((crafters[u.index] == u.crafter).all()) for u in units)
    assert len({u.seed for u in units}) == len(units)
    t = transfer_units(3, 5, batch_size=2, seed=5)
    assert [u.crafter for u in t[:3]] == [0, 1, 2]  # batch-major: one batch, all crafters
    assert len(t) == 9


@pytest.mark.parametrize("kind,params", [
    ("autoattack", {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 3,
                    "n_queries": 5, "n_restarts": 1, "eot_iter": 2}),
    ("eot-pgd", {"alpha": 0.05, "steps": 2, "eot_iter": 2, "random_start": True}),
])
def test_a_unit_does_not_depend_on_the_units_before_it(kind, params):
    """What makes a resumed run equal an uninterrupted one: AutoAttack reseeds the global
    RNG, and the random dispatch draws from one generator; every unit reseeds both."""
    models = population(2)
    x, _ = data(8)
    y = models[0](x).argmax(1).detach()
    adaptive = adaptive_units(8, batch_size=4, seed=3)
    run = AdaptiveExecutor(models, x, y, kind=get(kind), eps=0.3, params=params, runtime=CPU)
    both = run(adaptive)
    alone = AdaptiveExecutor(models, x, y, kind=get(kind), eps=0.3, params=params,
                             runtime=CPU)([adaptive[1]])
    assert torch.equal(both[1], alone[0])
    if kind == "autoattack":
        transfer = transfer_units(2, 8, batch_size=4, seed=3)
        seq = SequentialExecutor(models, x, y, kind=get(kind), eps=0.3, params=params, device="cpu")
        all_units = seq(transfer)
        last = SequentialExecutor(models, x, y, kind=get(kind), eps=0.3, params=params,
                                  device="cpu")(transfer[-1:])
        assert torch.equal(all_units[-1], last[0])
