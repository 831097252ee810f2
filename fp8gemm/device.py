"""What the library needs to know about the GPU: architecture, SM count, shared-memory limit.

Everything here also answers on a machine without a GPU (with the H200's figures), so that
heuristics and JIT compilation can be exercised on CPU-only CI.
"""

from __future__ import annotations

from functools import cache

import torch

__all__ = ["set_num_sms", "get_num_sms", "is_sm90_available", "max_shared_memory_per_block"]

# H200 (and H100 SXM) figures, used when no GPU is present.
_DEFAULT_NUM_SMS = 132
_DEFAULT_MAX_SMEM_PER_BLOCK = 232448

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
    if isinstance(num_sms, bool) or not isinstance(num_sms, int):
        raise TypeError(f"num_sms: expected an int, got {type(num_sms).__name__}")
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


def is_sm90_available() -> bool:
    """Whether the current CUDA device is a Hopper GPU (compute capability 9.0), the kernels' target."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


def max_shared_memory_per_block() -> int:
    """Bytes of shared memory one block may opt in to: from the current device when a GPU is present,
    else 232448 (an H200/H100's 227 KiB)."""
    if not torch.cuda.is_available():
        return _DEFAULT_MAX_SMEM_PER_BLOCK
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return int(getattr(props, "shared_memory_per_block_optin", _DEFAULT_MAX_SMEM_PER_BLOCK))
