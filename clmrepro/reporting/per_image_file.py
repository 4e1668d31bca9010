"""The per-image results behind every number of a report, published beside metrics.json.

metrics.json holds the numbers; ``per_image.csv.gz`` holds what they are means of, so that any
number of a report (a cell, a strongest row, a claim's difference) can be recomputed without
the run's artifacts (issue 26).  One row per record the report read or derived: the scores
records (benign and every attack, every threat model), every attack of the sanity jobs' check
files (``check:<name>``) and the derived strongest rows.  Each image's expected accuracy
under random dispatch is a fraction with a small denominator (a population of n members: k/n
under the paper protocol and the adaptive threat model, k/(n(n−1)) for the transfer matrix;
the checks' own draws likewise), so a row stores that denominator and the numerators, which
is exact and, gzipped, compact.

Columns: experiment, population, regime, replicate, threat_model, eps, attack, inference
(random dispatch, or the deterministic rules average and vote), n, denominator, numerators
(space-separated, image by image, in test-set order).

The file is written deterministically (gzip without a timestamp or a name): two runs of one
spec give the same bytes.  torch-free.
"""

from __future__ import annotations

import csv
import gzip
import io
from fractions import Fraction

FILE_NAME = "per_image.csv.gz"
COLUMNS = ("experiment", "population", "regime", "replicate", "threat_model", "eps", "attack",
           "inference", "n", "denominator", "numerators")
MAX_DENOMINATOR = 100_000
_EXACT = 1e-12


def denominator(values: list[float]) -> int:
    """The smallest common denominator of ``values`` (each within 1e-12 of a fraction whose
    denominator is at most MAX_DENOMINATOR); a ValueError for values that are no such
    fraction."""
    common = 1
    for value in values:
        fraction = Fraction(value).limit_denominator(MAX_DENOMINATOR)
        if abs(float(fraction) - value) > _EXACT:
            raise ValueError(f"per-image value {value!r} is no fraction with a denominator up "
                             f"to {MAX_DENOMINATOR}")
        common = common * fraction.denominator // _gcd(common, fraction.denominator)
        if common > MAX_DENOMINATOR:
            raise ValueError(f"per-image values need a common denominator above "
                             f"{MAX_DENOMINATOR}")
    return common


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def rows(records: list[dict]) -> list[list]:
    """One CSV row per record that carries per-image values, in a stable order."""
    out = []
    for r in records:
        values = r.get("per_image")
        if not values:
            continue
        d = denominator(values)
        out.append([r["experiment"], r["population"], r.get("regime", ""),
                    int(r.get("replicate", 0)), r["threat_model"], f"{float(r['eps']):.6g}",
                    r["attack"], r.get("inference") or "random", len(values), d,
                    " ".join(str(round(v * d)) for v in values)])
    return sorted(out, key=lambda row: tuple(str(x) for x in row[:8]))


def encode(records: list[dict]) -> bytes:
    """The gzipped CSV (no timestamp, no file name: the same bytes for the same records)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(records))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(text.getvalue().encode("utf-8"))
    return buffer.getvalue()


def decode(data: bytes) -> list[dict]:
    """Records {experiment, population, regime, replicate, threat_model, eps, attack,
    inference, per_image} from :func:`encode`'s bytes (per_image as exact fractions turned to floats)."""
    reader = csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8")))
    out = []
    for row in reader:
        d = int(row["denominator"])
        values = [int(k) / d for k in row["numerators"].split()]
        if len(values) != int(row["n"]):
            raise ValueError(f"{row['population']}/{row['attack']}: {len(values)} images, "
                             f"the row says {row['n']}")
        out.append({"experiment": row["experiment"], "population": row["population"],
                    "regime": row["regime"], "replicate": int(row["replicate"]),
                    "threat_model": row["threat_model"], "eps": float(row["eps"]),
                    "attack": row["attack"], "inference": row["inference"],
                    "per_image": values})
    return out
