"""Locating the CUDA command-line tools (nvcc, cuobjdump, nvdisasm) and reading cubins with them."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import env


def _cuda_home() -> Path | None:
    return env.cuda_home()


def find_tool(name: str) -> str | None:
    """Path of a CUDA binary: the pip wheel (cuda.pathfinder), then $CUDA_HOME/bin, then PATH."""
    try:
        from cuda.pathfinder import find_nvidia_binary_utility

        found = find_nvidia_binary_utility(name)
        if found:
            return str(found)
    except Exception:  # pathfinder missing or does not know this tool
        pass
    home = _cuda_home()
    if home is not None and (home / "bin" / name).is_file():
        return str(home / "bin" / name)
    return shutil.which(name)


def find_nvcc() -> str | None:
    """nvcc from FP8GEMM_NVCC / DG_NVCC_COMPILER, else $CUDA_HOME/bin/nvcc, else PATH."""
    if override := env.nvcc_override():
        return override
    home = _cuda_home()
    if home is not None and (home / "bin" / "nvcc").is_file():
        return str(home / "bin" / "nvcc")
    return shutil.which("nvcc")


@functools.lru_cache(maxsize=8)
def nvcc_version(path: str) -> str:
    """Version of the nvcc at `path`, e.g. '13.0.88' (from 'release 13.0, V13.0.88')."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    for token in out.replace(",", " ").split():
        if token.startswith("V") and token[1:2].isdigit():
            return token[1:]
    raise RuntimeError(f"could not read the version of {path} from:\n{out}")


def _run_on_cubin(args: list[str], cubin: bytes) -> str:
    tool = find_tool(args[0])
    if tool is None:
        raise FileNotFoundError(
            f"{args[0]} not found (install the nvidia-cuda-{args[0]} wheel or set CUDA_HOME)"
        )
    with tempfile.TemporaryDirectory(prefix="fp8gemm-cubin-") as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        proc = subprocess.run([tool, *args[1:], str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def sass(cubin: bytes) -> str:
    """The SASS of a cubin, as printed by `cuobjdump -sass`."""
    return _run_on_cubin(["cuobjdump", "-sass"], cubin)


def res_usage(cubin: bytes) -> str:
    """`cuobjdump -res-usage` of a cubin (registers, stack, shared, local per function)."""
    return _run_on_cubin(["cuobjdump", "-res-usage"], cubin)
