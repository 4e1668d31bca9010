"""The data step: ``python -m clmrepro.steps.data JOB.json``, and how the other steps read its file.

One data job per dataset (``data-<name>``, plan.compile) fetches the dataset's source files
once, checks them against torchvision's checksums, and writes the decoded tensors and a
manifest (``core.prepare``).  In the DAG it is a local rule (the submit host has network, the
compute nodes may not) and every train, retrain, attack and evaluate job takes its prepared
file as ``inputs.data``: no job downloads, and jobs started at once never write the same
files.  A wrong checksum or a download cut short is one line naming the file (exit 1), and
nothing half-written is left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clmrepro.plan.jobs import DataJob
from clmrepro.steps.common import prepare_torch, say, step_main

if TYPE_CHECKING:
    from clmrepro.core.data import DataBundle


def run_data(job: DataJob) -> None:
    """Prepare the job's dataset into ``outputs.data`` and ``outputs.manifest``."""
    from clmrepro.core.prepare import prepare_dataset

    prepare_torch(job)  # threads and deterministic kernels: the MNIST resize runs on torch
    dataset = job.params.dataset
    prepare_dataset(dataset.name, dataset.root, job.outputs["data"], job.outputs["manifest"],
                    say=lambda line: say(f"{job.id}: {line}"))


def load_job_dataset(dataset: dict, prepared: str | None = None) -> "DataBundle":
    """The job's split of its dataset (``params.dataset``): from the data job's prepared file
    when the job has one (``inputs.data``), else from the files under ``root`` without
    downloading (fake-cifar10, or a job file written before the data stage existed)."""
    from clmrepro.core.data import load_dataset, load_prepared

    sizes = {"n_train": dataset.get("n_train"), "n_test": dataset.get("n_test"),
             "split_seed": int(dataset.get("split_seed", 0))}
    if prepared:
        return load_prepared(prepared, dataset["name"], **sizes)
    return load_dataset(dataset["name"], dataset.get("root", "data"), download=False, **sizes)


def main(argv: list[str] | None = None) -> int:
    return step_main(run_data, argv, typed=True)


if __name__ == "__main__":
    raise SystemExit(main())
