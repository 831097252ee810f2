"""fp8gemm's JIT: CUDA source -> cached cubin -> launched kernel. It knows nothing about GEMMs.

    kernel = build(source, "my_kernel", flags=("-DBLOCK_N=128",))
    kernel.launch(grid, block, smem_bytes, (tensor_map, tensor, ctypes.c_int32(m)), cluster=2)
"""

from __future__ import annotations

from .artifacts import CompiledKernel, CompileError, PtxasResources
from .compiler import compile_cuda
from .errors import CudaDriverError
from .runtime import Kernel, Launch, PointerLaunch, load
from .tma import TensorMap, make_tensor_map
from .tools import sass


def build(source: str, kernel_name: str, flags: tuple[str, ...] = (), *, arch: str = "sm_90a") -> Kernel:
    """Compile (through the caches) and load: the one call most users need."""
    return load(compile_cuda(source, kernel_name, flags=tuple(flags), arch=arch))


__all__ = [
    "CompileError",
    "CompiledKernel",
    "CudaDriverError",
    "Kernel",
    "Launch",
    "PointerLaunch",
    "PtxasResources",
    "TensorMap",
    "build",
    "compile_cuda",
    "load",
    "make_tensor_map",
    "sass",
]
