"""The CUDA driver as the JIT uses it: the cuda-bindings module, cuInit once, torch's primary context
and the device attributes the launch path needs (asked once per device).

Everything else in `fp8gemm.jit` that talks to the driver goes through here, so `runtime` (kernels)
and `tma` (tensor maps) depend on this module and not on each other.
"""

from __future__ import annotations

import ctypes
import threading
from types import ModuleType

import torch

from .errors import check

__all__ = ["driver", "ensure_context", "max_dynamic_smem", "raw_launch_kernel_ex"]

_lock = threading.Lock()
_module: ModuleType | None = None
_smem_optin: dict[int, int] = {}
_raw_launch: object = False  # not looked up yet; then a ctypes function or None


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


def raw_launch_kernel_ex():
    """libcuda's ``cuLaunchKernelEx(const CUlaunchConfig*, CUfunction, void**, void**)`` as a ctypes
    function taking four addresses and returning the CUresult as an int, or None where libcuda cannot
    be opened (no driver: CPU-only machines) or lacks the entry point (drivers before CUDA 11.8).

    NOTES: the launch hot path calls this rather than cuda-bindings' ``cuLaunchKernelEx``: the
    binding wraps its arguments and its result (a Python enum) on every call, ~1-3 us of host time
    per launch, where the ctypes call costs ~0.4 us. The memory it points to (the CUlaunchConfig and
    its attributes) stays owned by cuda-bindings objects that the caller keeps alive.
    """
    global _raw_launch
    if _raw_launch is False:
        with _lock:
            if _raw_launch is False:
                try:
                    fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernelEx  # torch already loaded it
                    fn.argtypes = [ctypes.c_void_p] * 4
                    fn.restype = ctypes.c_int
                except (OSError, AttributeError):
                    fn = None
                _raw_launch = fn
    return _raw_launch
