"""The architecture the plan prices a job as (time, storage, host memory, GPU slots).

The paper's two are priced as themselves.  Your own (core.factory, ``python:<module>:<fn>``)
cannot be measured before it is built, so it is priced as LeNet5 on 1-channel datasets and
as ResNet18 on 3-channel ones (docs/bring-your-own.md says so; its GPU memory is not
estimated).  torch-free.
"""

from __future__ import annotations

from clmrepro.fields import DATASET_CHANNELS

KNOWN = ("lenet5", "resnet18")
CHANNELS = DATASET_CHANNELS


def priced_as(params: dict) -> str:
    architecture = params.get("architecture") or "lenet5"
    if architecture in KNOWN:
        return architecture
    channels = CHANNELS.get(((params.get("dataset") or {}).get("name")), 1)
    return "lenet5" if channels == 1 else "resnet18"
