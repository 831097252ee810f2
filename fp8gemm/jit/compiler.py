"""CUDA C++ source -> cubin, with NVRTC (default) or nvcc, through the on-disk cache.

The source includes the library's device headers as `#include <fp8gemm/...>`; fp8gemm/include is
always on the include path. Kernels are looked up by name in the cubin, so declare them
`extern "C"` (template arguments go into the source as constants, not into the symbol).
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import cache, env, tools
from .artifacts import (
    UNKNOWN_RESOURCES,
    CompiledKernel,
    CompileError,
    PtxasResources,
    parse_ptxas_log,
    parse_res_usage,
)

INCLUDE_DIR = cache.INCLUDE_DIR
_BASE_FLAGS = ("-std=c++17", "-DNDEBUG")


@functools.lru_cache(maxsize=1)
def _cudart_include_dir() -> str | None:
    # Not needed by our device code (self-contained), but lets user sources include toolkit headers.
    try:
        from cuda.pathfinder import find_nvidia_header_directory

        return find_nvidia_header_directory("cudart") or None
    except Exception:
        return None


def _include_flags() -> list[str]:
    dirs = [str(INCLUDE_DIR)]
    if extra := _cudart_include_dir():
        dirs.append(extra)
    return [f"-I{d}" for d in dirs]


@functools.lru_cache(maxsize=1)
def _nvrtc_version() -> str:
    from cuda.bindings import nvrtc

    err, major, minor = nvrtc.nvrtcVersion()
    if err:
        raise RuntimeError(f"nvrtcVersion failed: {err!r}")
    return f"{major}.{minor}"


def compiler_id(kind: str | None = None) -> str:
    """Which compiler builds kernels now, with its version: 'nvrtc-13.5' or 'nvcc-13.0.88'."""
    kind = kind or env.compiler_kind()
    if kind == "nvrtc":
        return f"nvrtc-{_nvrtc_version()}"
    nvcc = tools.find_nvcc()
    if nvcc is None:
        raise RuntimeError("FP8GEMM_COMPILER=nvcc but no nvcc found (set FP8GEMM_NVCC or CUDA_HOME)")
    return f"nvcc-{tools.nvcc_version(nvcc)}"


def compile_cuda(
    source: str,
    kernel_name: str,
    *,
    flags: tuple[str, ...] = (),
    arch: str = "sm_90a",
    use_cache: bool = True,
) -> CompiledKernel:
    """Compile `source` for `arch` and return the cubin of `kernel_name` with its ptxas resources.

    Goes through the in-memory and on-disk caches unless `use_cache` is false. Raises CompileError
    (with the log and the path of the written source) when the compiler fails.
    """
    flags = tuple(flags)
    kind = env.compiler_kind()
    cid = compiler_id(kind)

    def build(workdir: Path) -> CompiledKernel:
        return _compile(kind, cid, source, kernel_name, flags, arch, workdir)

    if not use_cache:
        workdir = Path(tempfile.mkdtemp(prefix="fp8gemm-jit-"))
        kernel = build(workdir)  # on failure the directory stays: the error points at its source
        shutil.rmtree(workdir, ignore_errors=True)
        return kernel
    key = cache.entry_key(source, kernel_name, flags=flags, arch=arch, compiler_id=cid)
    return cache.get_or_compile(key, build)


def _compile(
    kind: str, cid: str, source: str, name: str, flags: tuple[str, ...], arch: str, workdir: Path
) -> CompiledKernel:
    source_path = workdir / "kernel.cu"
    cache.write_source(source_path, source)
    t0 = time.perf_counter()
    if kind == "nvrtc":
        cubin, log = _nvrtc(source, source_path, flags, arch)
    else:
        cubin, log = _nvcc(source_path, flags, arch, workdir)
    seconds = time.perf_counter() - t0
    if name.encode() + b"\0" not in cubin:
        raise CompileError(
            f"kernel {name!r} is not in the cubin (is it declared extern \"C\" __global__?)",
            log=log,
            source_path=source_path,
        )
    resources = _resources(log, name, cubin)
    env.debug(f"compiled {name} with {cid} for {arch} in {seconds:.3f} s")
    if env.ptxas_verbose():
        print(f"[fp8gemm.jit] {name}: {resources}", file=sys.stderr, flush=True)
    return CompiledKernel(name=name, cubin=cubin, resources=resources, compile_seconds=seconds,
                          compiler=cid, arch=arch)


def _resources(log: str, name: str, cubin: bytes) -> PtxasResources:
    found = parse_ptxas_log(log, name)
    if found is not None:
        return found
    try:  # the log did not have them: ask cuobjdump
        found = parse_res_usage(tools.res_usage(cubin), name)
    except (OSError, RuntimeError):
        found = None
    return found or UNKNOWN_RESOURCES


def _nvrtc(source: str, source_path: Path, flags: tuple[str, ...], arch: str) -> tuple[bytes, str]:
    from cuda.bindings import nvrtc

    options = [f"-arch={arch}", "-default-device", "-Xptxas=-v", *_BASE_FLAGS, *_include_flags(), *flags]
    env.debug("nvrtc " + " ".join(shlex.quote(o) for o in options) + f" {source_path}")
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), str(source_path.name).encode(), 0, [], [])
    if err:
        raise CompileError(f"nvrtcCreateProgram failed: {err!r}", source_path=source_path)
    try:
        encoded = [o.encode() for o in options]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(encoded), encoded)
        log = _nvrtc_log(nvrtc, prog)
        if result:
            _, what = nvrtc.nvrtcGetErrorString(result)
            raise CompileError(
                f"NVRTC failed to compile {source_path.name}: {what.decode()}",
                log=log,
                source_path=source_path,
                command="nvrtc " + " ".join(options),
            )
        err, size = nvrtc.nvrtcGetCUBINSize(prog)
        if err or size == 0:
            raise CompileError(f"NVRTC produced no cubin for {arch} ({err!r})", log=log,
                               source_path=source_path)
        cubin = bytes(size)
        (err,) = nvrtc.nvrtcGetCUBIN(prog, cubin)
        if err:
            raise CompileError(f"nvrtcGetCUBIN failed: {err!r}", log=log, source_path=source_path)
        return cubin, log
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _nvrtc_log(nvrtc, prog) -> str:
    err, size = nvrtc.nvrtcGetProgramLogSize(prog)
    if err or size <= 1:
        return ""
    buf = bytes(size)
    nvrtc.nvrtcGetProgramLog(prog, buf)
    return buf.rstrip(b"\0").decode(errors="replace")


def _gencode(arch: str) -> str:
    if not arch.startswith("sm_"):
        raise ValueError(f"arch must look like 'sm_90a', got {arch!r}")
    return f"-gencode=arch=compute_{arch[3:]},code={arch}"


def _nvcc(source_path: Path, flags: tuple[str, ...], arch: str, workdir: Path) -> tuple[bytes, str]:
    nvcc = tools.find_nvcc()
    if nvcc is None:
        raise CompileError("nvcc not found (set FP8GEMM_NVCC or CUDA_HOME)", source_path=source_path)
    with tempfile.TemporaryDirectory(prefix="fp8gemm-nvcc-", dir=workdir) as tmp:
        out = Path(tmp) / "kernel.cubin"
        cmd = [nvcc, "-cubin", _gencode(arch), "-O3", "-Xptxas=-v", *_BASE_FLAGS, *_include_flags(),
               *flags, "-o", str(out), str(source_path)]
        command = " ".join(shlex.quote(c) for c in cmd)
        env.debug(command)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        log = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not out.is_file():
            raise CompileError(f"nvcc failed with exit code {proc.returncode}", log=log,
                               source_path=source_path, command=command)
        return out.read_bytes(), log


def find_cached(source: str, kernel_name: str, *, flags: tuple[str, ...] = (),
                arch: str = "sm_90a") -> CompiledKernel | None:
    """The cached build of `source` (as `compile_cuda` would return it), or None; never compiles."""
    key = cache.entry_key(source, kernel_name, flags=tuple(flags), arch=arch, compiler_id=compiler_id())
    return cache.lookup(key)
