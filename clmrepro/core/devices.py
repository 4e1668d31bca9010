"""One code path for CPU and CUDA: the job asks, this answers; and the process settings every
job shares (threads, allocator, determinism), set by :func:`prepare_torch` before any work,
by the steps and by ``clmrepro calibrate`` alike."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def raise_mmap_threshold(mmap_bytes: int = 32 << 20, trim_bytes: int = 64 << 20) -> bool:
    """Keep freed tensor memory in the process (glibc only; False elsewhere).

    glibc serves every allocation above 128 KiB with a fresh mmap and returns it on free,
    so a LeNet5 batch's activations (~2 MB) are page-faulted and zeroed again at every call
    until some larger free raises glibc's adaptive threshold.  Measured on the 2-core
    development machine: torchattacks PGD-40 on 5 batches of 100 took 3.4-3.8 s in a fresh
    process and 2.3 s after this call.  Numbers do not change: only where memory comes from."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)
                    and libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))
    except (OSError, AttributeError):
        return False


def deterministic() -> None:
    """Deterministic kernels where PyTorch has them, a warning where it has none.  Same flags
    as ``use_deterministic_algorithms(True, warn_only=True)``, without its import of
    torch._inductor (0.9 s per job here)."""
    torch.set_deterministic_debug_mode("warn")


def resolve_device(requested: str = "auto") -> torch.device:
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda (got {requested!r})")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise RuntimeError("the spec asks for device 'cuda' but no CUDA device is visible")
    return torch.device("cpu")


# cuBLAS's deterministic workspace (CUDA's "Results reproducibility" notes; torch's
# use_deterministic_algorithms documentation): read when CUDA creates its first cuBLAS handle,
# so it must be in the environment before then.  Without it every cuBLAS call warns under
# warn-only determinism (and would raise under strict determinism).
CUBLAS_WORKSPACE = ":4096:8"
# What "fp32" means on CUDA here: IEEE float32 products and convolutions, as on the CPU.
# cuDNN defaults to TF32 convolutions on Ampere and newer (10-bit mantissa inputs); that is not
# what a record labelled fp32 promises.  torch's per-backend settings (the new API only: mixing
# it with allow_tf32 is an error in torch 2.9+).
FP32_PRECISION = "ieee"


def exact_fp32_on_cuda() -> None:
    """IEEE fp32 for CUDA matrix products and cuDNN convolutions and RNNs (no TF32), and no
    NaN fill of every ``torch.empty`` (determinism's ``fill_uninitialized_memory``: a memset per
    allocation on the GPU, and nothing here reads memory it did not write)."""
    cuda_matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(cuda_matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        cuda_matmul.fp32_precision = FP32_PRECISION
        cudnn.conv.fp32_precision = FP32_PRECISION
        cudnn.rnn.fp32_precision = FP32_PRECISION
    else:                                            # torch before 2.9
        cuda_matmul.allow_tf32 = False
        cudnn.allow_tf32 = False
    torch.utils.deterministic.fill_uninitialized_memory = False


def cuda_fp32_precision() -> dict[str, str]:
    """The effective fp32 precision of CUDA matrix products and cuDNN convolutions ("ieee" or
    "tf32"), as a record states it."""
    cuda_matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(cuda_matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        matmul, conv = cuda_matmul.fp32_precision, cudnn.conv.fp32_precision
        if matmul == "none":                          # unset: torch's default, IEEE for matmul
            matmul = "tf32" if torch.get_float32_matmul_precision() != "highest" else "ieee"
    else:
        matmul = "tf32" if cuda_matmul.allow_tf32 else "ieee"
        conv = "tf32" if cudnn.allow_tf32 else "ieee"
    return {"cuda_matmul_fp32": matmul, "cudnn_conv_fp32": conv}


def prepare_torch(threads: int = 1, device: str = "auto") -> torch.device:
    """Set up this process as every job runs: cuBLAS's deterministic workspace before CUDA
    starts, ``threads`` fixed by the plan (not by the executor, so numbers do not depend on
    where a job ran), deterministic kernels, the allocator setting, and on CUDA IEEE fp32
    (:func:`exact_fp32_on_cuda`); return the device asked for."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.set_num_threads(int(threads))
    deterministic()
    raise_mmap_threshold()
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        exact_fp32_on_cuda()
    return resolved


# The environment variables that choose which CPU kernels run (docs/architecture.md,
# "Identical numbers"): ATen's dispatch, oneDNN's convolutions, MKL's matrix products.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def machine(device: torch.device | str = "cpu") -> dict[str, str]:
    """What decides float rounding here: the CPU capability ATen dispatches to (AVX512,
    AVX2, DEFAULT), any variable that capped the kernels, and the GPU's name on CUDA.
    Runs agree bit for bit only where this agrees (same machine kind and capability)."""
    info = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}
    info.update({var: os.environ[var] for var in KERNEL_VARIABLES if os.environ.get(var)})
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["gpu_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(torch.device(device)))
        info.update(cuda_fp32_precision())          # only on CUDA: CPU records stay as they were
    return info


def record_machine(device: torch.device | str) -> dict[str, dict[str, str]]:
    """What an attack or evaluate record adds for the device its passes ran on: nothing on the
    CPU (CPU records stay as they were), on CUDA ``{"machine": machine(device)}``: the GPU, its
    capability and the effective fp32 precision of matrix products and convolutions, as a
    training record states them."""
    device = torch.device(device)
    return {"machine": machine(device)} if device.type == "cuda" else {}


def device_identity(device: torch.device | str) -> dict[str, str]:
    """What a resumable state's fingerprint adds for the device it was computed on: nothing on
    the CPU (CPU fingerprints as before), the GPU model and capability on CUDA, so a state saved
    on one GPU model is not resumed on another (after a Slurm retry on another node) where the
    results promise to be identical."""
    device = torch.device(device)
    if device.type != "cuda":
        return {}
    return {"device": "cuda", "gpu": torch.cuda.get_device_name(device),
            "gpu_capability": "{}.{}".format(*torch.cuda.get_device_capability(device))}


def describe_machine(info: dict[str, str]) -> str:
    """One line: ``AVX512``, ``AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)``,
    ``AVX512; NVIDIA H100 (matmul ieee, conv ieee)``."""
    caps = [f"{k}={v}" for k, v in info.items() if k in KERNEL_VARIABLES]
    text = info.get("cpu_capability", "unknown") + (f" ({', '.join(caps)})" if caps else "")
    fp32 = (f" (matmul {info['cuda_matmul_fp32']}, conv {info['cudnn_conv_fp32']})"
            if info.get("cudnn_conv_fp32") else "")
    return text + (f"; {info['gpu']}{fp32}" if info.get("gpu") else "")
