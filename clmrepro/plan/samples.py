"""Images per threat model of a scoring job: one rule for the plan's prices
(``plan.estimate``), its storage (``plan.storage``) and the steps that craft and score
(``steps.attack``, ``steps.scoring``).

The plan resolves the numbers once (``plan.defaults.samples_block`` / ``n_samples``: the spec's
subsets, null → the paper protocol's N, every one checked against the test split by
``spec.checks``) and writes them into the job's params; everything after reads them here
instead of working them out again.  Every threat model uses the *first* N test images.
"""

from __future__ import annotations

from clmrepro.fields import THREAT_MODELS


def images_per_threat(params: dict) -> dict[str, int | None]:
    """N per threat model of ``params.threat_models`` (default: the paper protocol only):
    ``params.samples[threat]``, else ``params.n_samples``; capped at the test split
    (``params.dataset.n_test``), which is also what a null N means.  None only for a job
    without a known test split and without N (a hand-made job: the whole split)."""
    samples = params.get("samples") or {}
    unknown = sorted(set(samples) - set(THREAT_MODELS))
    if unknown:
        raise ValueError(f"params.samples: unknown threat models {unknown}")
    n_test = (params.get("dataset") or {}).get("n_test")
    default = params.get("n_samples")
    sizes: dict[str, int | None] = {}
    for threat in params.get("threat_models") or ["paper"]:
        n = samples.get(threat, default)
        if n is not None and int(n) < 1:
            raise ValueError(f"params.samples.{threat} must be >= 1 (got {n})")
        if n is None:
            sizes[threat] = None if n_test is None else int(n_test)
        else:
            sizes[threat] = int(n) if n_test is None else min(int(n), int(n_test))
    return sizes
