"""Which submodel classifies which image correctly: the per-image result behind every MRA.

An MRA (eq. 6) is the mean of a boolean table: ``correct[i, j]`` is true when submodel i
classifies image j right (paper protocol and adaptive: shape (n, N); transfer: (n, n, N),
``[i, k, j]`` = submodel k on the image j crafted on submodel i).  Scores records keep the
table beside the number (issue 18), packed eight booleans to a byte and base64-encoded,
so that the report can take per-image worst cases over attacks and pair two populations
image by image.  The expected accuracy of random dispatch on image j is the column mean
(paper, adaptive) or the mean over crafting/scoring pairs i != k (transfer).

torch-free: numpy only, so the report reads it without loading torch.
"""

from __future__ import annotations

import base64

import numpy as np

FORMAT = "packbits-base64"


def pack(correct) -> dict:
    """A boolean array (numpy or torch, any shape) as ``{"shape", "format", "bits"}``."""
    table = np.asarray(correct.cpu() if hasattr(correct, "cpu") else correct, dtype=bool)
    bits = np.packbits(table.reshape(-1))
    return {"shape": list(table.shape), "format": FORMAT,
            "bits": base64.b64encode(bits.tobytes()).decode("ascii")}


def unpack(blob: dict) -> np.ndarray:
    """The boolean array :func:`pack` stored."""
    if blob.get("format") != FORMAT:
        raise ValueError(f"per-image table in an unknown format {blob.get('format')!r} "
                         f"(expected {FORMAT!r})")
    shape = tuple(int(s) for s in blob["shape"])
    count = int(np.prod(shape)) if shape else 1
    raw = np.frombuffer(base64.b64decode(blob["bits"]), dtype=np.uint8)
    if len(raw) != (count + 7) // 8:
        raise ValueError(f"per-image table of shape {shape} holds {len(raw)} bytes "
                         f"(expected {(count + 7) // 8})")
    return np.unpackbits(raw)[:count].astype(bool).reshape(shape)


def expected_accuracy(correct: np.ndarray) -> np.ndarray:
    """Per image, the share of (crafting, scoring) cases that classify it right: the column
    mean of an (n, N) table, or the mean over i != k of an (n, n, N) transfer table."""
    table = np.asarray(correct, dtype=np.float64)
    if table.ndim == 2:
        return table.mean(axis=0)
    if table.ndim == 3 and table.shape[0] == table.shape[1] and table.shape[0] >= 2:
        n = table.shape[0]
        off = ~np.eye(n, dtype=bool)
        return table[off].mean(axis=0)
    raise ValueError(f"a per-image table is (n, N) or (n, n, N) with n >= 2 (got {table.shape})")
