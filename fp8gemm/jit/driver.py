"""The CUDA driver as the JIT uses it: the cuda-bindings module, cuInit once, torch's primary context
and the device attributes the launch path needs (asked once per device).

Everything else in `fp8gemm.jit` that talks to the driver goes through here, so `runtime` (kernels)
and `tma` (tensor maps) depend on this module and not on each other.
"""

from __future__ import annotations

import threading
from types import ModuleType

import torch

from .errors import check

__all__ = ["driver", "ensure_context", "max_dynamic_smem"]

_lock = threading.Lock()
_module: ModuleType | None = None
_smem_optin: dict[int, int] = {}


def driver() -> ModuleType:
    """``cuda.bindings.driver``, after ``cuInit(0)`` (done once per process)."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                from cuda.bindings import driver as cu

                (err,) = cu.cuInit(0)
                check(err, "cuInit")
                _module = cu
    return _module


def ensure_context(device: int | None = None) -> int:
    """Make the primary context of `device` (default: torch's current device) current in this
    thread, unless it already is, and return the device index. torch uses the primary context too,
    so kernels loaded here share memory and streams with torch."""
    cu = driver()
    if device is None:
        device = torch.cuda.current_device()
    err, ctx = cu.cuCtxGetCurrent()
    check(err, "cuCtxGetCurrent")
    if int(ctx) != 0:
        err, current = cu.cuCtxGetDevice()
        if not err and int(current) == device:
            return device
    err, dev = cu.cuDeviceGet(device)
    check(err, f"cuDeviceGet({device})")
    err, primary = cu.cuDevicePrimaryCtxRetain(dev)  # held for the process lifetime, like torch's
    check(err, f"cuDevicePrimaryCtxRetain({device})")
    (err,) = cu.cuCtxSetCurrent(primary)
    check(err, "cuCtxSetCurrent")
    return device


def max_dynamic_smem(device: int) -> int:
    """CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN of a device (232448 on H100/H200)."""
    value = _smem_optin.get(device)
    if value is None:
        cu = driver()
        err, dev = cu.cuDeviceGet(device)
        check(err, f"cuDeviceGet({device})")
        attr = cu.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        err, value = cu.cuDeviceGetAttribute(attr, dev)
        check(err, "cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)")
        value = _smem_optin[device] = int(value)
    return value
