"""What the library needs to know about the GPU: architecture, SM count, shared-memory limit.

Everything here also answers on a machine without a GPU (with the H200's figures), so that
heuristics and JIT compilation can be exercised on CPU-only CI.
"""

from __future__ import annotations

import operator
from functools import cache

import torch

from .config import SMEM_LIMIT

__all__ = [
    "set_num_sms",
    "get_num_sms",
    "is_sm90_available",
    "is_sm90",
    "require_sm90",
    "UnsupportedGPUError",
    "max_shared_memory_per_block",
]

# torch's current CUDA device index: the C builtin where torch has one (the hot paths ask it on every
# call; torch.cuda.current_device wraps it in Python). fp8gemm.jit keeps its own copy: the JIT does
# not import the library.
current_device_index = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device

# H200 (and H100 SXM) figures, used when no GPU is present.
_DEFAULT_NUM_SMS = 132
_DEFAULT_MAX_SMEM_PER_BLOCK = SMEM_LIMIT  # the heuristics size tiles for it (config.py)

_num_sms_override: int | None = None


@cache
def _sm_count(device_index: int) -> int:
    # NOTES: asked on every GEMM call; reading the device properties costs ~10 us of host time.
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _device_num_sms() -> int | None:
    if not torch.cuda.is_available():
        return None
    return _sm_count(torch.cuda.current_device())


def set_num_sms(num_sms: int) -> None:
    """Limit the number of SMs the persistent kernels use (e.g. to leave SMs to communication kernels).

    Args:
        num_sms: a positive int; on a machine with a GPU, at most the current device's SM count.
    """
    global _num_sms_override
    if isinstance(num_sms, (bool, torch.Tensor)):
        raise TypeError(f"num_sms: expected an int, got {type(num_sms).__name__}")
    try:
        num_sms = operator.index(num_sms)  # int, numpy integers, anything with __index__
    except TypeError:
        raise TypeError(f"num_sms: expected an int, got {type(num_sms).__name__}") from None
    available = _device_num_sms()
    if num_sms <= 0 or (available is not None and num_sms > available):
        limit = f"1..{available}" if available is not None else "a positive int"
        raise ValueError(f"num_sms: expected {limit}, got {num_sms}")
    _num_sms_override = num_sms


def get_num_sms() -> int:
    """The SM count the kernels plan for: the value of `set_num_sms`, else the current CUDA device's
    SM count, else 132 (an H200) when no GPU is present."""
    if _num_sms_override is not None:
        return _num_sms_override
    available = _device_num_sms()
    return available if available is not None else _DEFAULT_NUM_SMS


def num_sms_of(index: int) -> int:
    """`get_num_sms` for a CUDA device known to exist (a CUDA tensor's): the `set_num_sms` limit, else
    its SM count; no availability query (the per-call host path of the activation cast)."""
    return _num_sms_override if _num_sms_override is not None else _sm_count(index)


def is_sm90_available() -> bool:
    """Whether the current CUDA device is a Hopper GPU (compute capability 9.0), the kernels' target."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


class UnsupportedGPUError(RuntimeError):
    """The GPU is not a Hopper (sm_90) GPU: fp8gemm's CUDA kernels cannot run on it."""


_GENERATIONS = {7: "Volta/Turing", 8: "Ampere/Ada", 10: "Blackwell", 11: "Blackwell", 12: "Blackwell"}


@cache
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def is_sm90(device: torch.device | int | None = None) -> bool:
    """Whether `device` (default: the current CUDA device) is a Hopper GPU. Cached per device: cheap."""
    # NOTES: a CUDA tensor's device needs no availability check (torch.cuda.is_available() reads the
    # environment on every call: ~5 us of a decode step's host time on the H200 hosts).
    cuda_device = isinstance(device, torch.device) and device.type == "cuda"
    if not cuda_device and not torch.cuda.is_available():
        return False
    index = _index(device)
    return _capability(index) == (9, 0)


def _index(device: torch.device | int | None) -> int:
    if device is None:
        return torch.cuda.current_device()
    if isinstance(device, int):
        return device
    if not isinstance(device, torch.device):
        device = torch.device(device)
    return device.index if device.index is not None else torch.cuda.current_device()


def require_sm90(device: torch.device | int | None = None) -> None:
    """Raise `UnsupportedGPUError` unless `device` is a Hopper (sm_90) GPU.

    The GEMMs call this before anything is compiled or loaded, so that an A100, an Ada or a Blackwell
    card gets this message instead of a driver error from deep inside the module loader.
    """
    index = _index(device)
    if _capability(index) == (9, 0):
        return
    major, minor = _capability(index)
    name = torch.cuda.get_device_name(index)
    generation = _GENERATIONS.get(major, "not Hopper")
    raise UnsupportedGPUError(
        f"cuda:{index} is {name} (sm_{major}{minor}, {generation}): fp8gemm's CUDA kernels need an sm_90 "
        "(Hopper: H100, H800, H200, H20) GPU. CPU tensors still work, through the (slow) reference "
        "implementation."
    )


def max_shared_memory_per_block() -> int:
    """Bytes of shared memory one block may opt in to: from the current device when a GPU is present,
    else 232448 (an H200/H100's 227 KiB)."""
    if not torch.cuda.is_available():
        return _DEFAULT_MAX_SMEM_PER_BLOCK
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return int(getattr(props, "shared_memory_per_block_optin", _DEFAULT_MAX_SMEM_PER_BLOCK))
