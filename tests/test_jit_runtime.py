"""The launch path's argument packing, checked on the CPU (no driver call is made)."""

from __future__ import annotations

import ctypes
import struct

import pytest
import torch

from fp8gemm.jit import Kernel, TensorMap
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources
from fp8gemm.jit.runtime import _ArgBuffer, _fill


def _kernel() -> Kernel:
    compiled = CompiledKernel(name="k", cubin=b"\x7fELF", resources=PtxasResources(8, 0, 0, 0, 0),
                              compile_seconds=0.0, compiler="test")
    return Kernel(compiled)


def _map(t: torch.Tensor, fill: int) -> TensorMap:
    return TensorMap(bytes([fill]) * 128, tensor=t, dims=(16, 16), strides_bytes=(16,), box=(16, 16),
                     swizzle_bytes=0)


def _pointee(ptrs_addr: int, i: int, size: int) -> bytes:
    addr = ctypes.c_void_p.from_address(ptrs_addr + 8 * i).value
    return ctypes.string_at(addr, size)


def test_pack_points_at_each_argument():
    t = torch.zeros(16, 16, dtype=torch.uint8)
    maps = [_map(t, 0x11 * (i + 1)) for i in range(4)]
    scalars = (ctypes.c_int32(-7), ctypes.c_uint32(7), ctypes.c_int64(-2**40), ctypes.c_uint64(2**63),
               ctypes.c_float(1.5))
    args = (*maps, t, *scalars)
    sizes = (128,) * 4 + (8, 4, 4, 8, 8, 4)
    kernel = _kernel()  # owns the buffers: keep it alive while reading them
    addr = kernel._pack(args, sizes)
    for i in range(4):
        assert _pointee(addr, i, 128) == bytes([0x11 * (i + 1)]) * 128
        assert ctypes.c_void_p.from_address(addr + 8 * i).value % 128 == 0  # aligned like a CUtensorMap
    assert struct.unpack("<Q", _pointee(addr, 4, 8))[0] == t.data_ptr()
    assert struct.unpack("<i", _pointee(addr, 5, 4))[0] == -7
    assert struct.unpack("<I", _pointee(addr, 6, 4))[0] == 7
    assert struct.unpack("<q", _pointee(addr, 7, 8))[0] == -2**40
    assert struct.unpack("<Q", _pointee(addr, 8, 8))[0] == 2**63
    assert struct.unpack("<f", _pointee(addr, 9, 4))[0] == 1.5


def test_pack_reuses_one_buffer_per_thread_and_arity():
    t = torch.zeros(16, 16, dtype=torch.uint8)
    args = (*[_map(t, 1)] * 4, ctypes.c_int32(1), ctypes.c_int32(2), ctypes.c_int32(3),
            ctypes.c_uint32(4), ctypes.c_int64(5), ctypes.c_float(6.0))
    kernel = _kernel()
    sizes = (128,) * 4 + (4, 4, 4, 4, 8, 4)
    assert kernel._pack(args, sizes) == kernel._pack(args, sizes)  # same buffer, no allocation
    assert kernel._pack(args[:2], None) != kernel._pack(args, sizes)  # another arity, another buffer


def test_prepared_arguments_own_their_scalars():
    # A prepared launch outlives the ctypes objects it was given: it must hold copies, so that a
    # caller reusing (or dropping) its scalars does not change what a later launch passes.
    t = torch.zeros(16, 16, dtype=torch.uint8)
    m, alpha = ctypes.c_int32(64), ctypes.c_float(0.5)
    buf = _ArgBuffer(4)
    _fill(buf, (_map(t, 7), t, m, alpha), (128, 8, 4, 4), "k", own_scalars=True)
    m.value, alpha.value = -1, 2.0
    assert struct.unpack("<i", _pointee(buf.ptrs_addr, 2, 4))[0] == 64
    assert struct.unpack("<f", _pointee(buf.ptrs_addr, 3, 4))[0] == 0.5
    assert struct.unpack("<Q", _pointee(buf.ptrs_addr, 1, 8))[0] == t.data_ptr()
    assert _pointee(buf.ptrs_addr, 0, 128) == bytes([7]) * 128
    # Without own_scalars (the per-call path) the caller's object itself is passed.
    _fill(buf, (_map(t, 7), t, m, alpha), None, "k")
    assert struct.unpack("<i", _pointee(buf.ptrs_addr, 2, 4))[0] == -1


def test_pack_rejects_bad_arguments():
    kernel = _kernel()
    with pytest.raises(TypeError, match="got int"):
        kernel._pack((3,), None)
    with pytest.raises(TypeError, match="takes 2 arguments, got 1"):
        kernel._pack((ctypes.c_int32(1),), (4, 4))
    with pytest.raises(TypeError, match="parameter is 8 bytes"):
        kernel._pack((ctypes.c_int32(1),), (8,))


# ------------------------------------------------------------------- the driver call of a Launch
def _prepared_launch(monkeypatch: pytest.MonkeyPatch, raw) -> tuple:
    """A Launch around a real (empty) CUlaunchConfig, with the ctypes launcher replaced by `raw`."""
    from cuda.bindings import driver as cu

    from fp8gemm.jit import runtime

    monkeypatch.setattr(runtime, "_raw_launcher", lambda: raw)
    monkeypatch.setattr(runtime, "_driver", lambda: cu)  # no cuInit: nothing here reaches a driver
    monkeypatch.setattr(runtime, "_current_device", lambda: 0)
    monkeypatch.setattr(runtime, "_raw_stream", lambda device: 0)
    cfg = cu.CUlaunchConfig()
    buf = _ArgBuffer(1)
    launch = runtime.Launch(_kernel(), 0, cu.CUfunction(), cfg, (1, 32, 0, 1), buf, ())
    return launch, cfg, buf


def test_prepared_launch_calls_the_driver_with_the_packed_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    launch, cfg, buf = _prepared_launch(monkeypatch, lambda *args: calls.append(args) or 0)
    launch()
    launch()
    assert calls == [(cfg.getPtr(), 0, buf.ptrs_addr, None)] * 2


def test_a_failed_raw_launch_raises_a_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fp8gemm.jit import CudaDriverError

    launch, _, _ = _prepared_launch(monkeypatch, lambda *args: 1)  # CUDA_ERROR_INVALID_VALUE
    with pytest.raises(CudaDriverError, match=r"cuLaunchKernelEx\(k, grid=0.*CUDA_ERROR_INVALID_VALUE \(1\)"):
        launch()


def test_raw_launcher_is_libcuda_or_none() -> None:
    """Where libcuda exists (a GPU machine) the launcher is its cuLaunchKernelEx taking 4 addresses;
    elsewhere None, and launches go through cuda-bindings."""
    from fp8gemm.jit.driver import raw_launch_kernel_ex

    raw = raw_launch_kernel_ex()
    assert raw is raw_launch_kernel_ex()  # looked up once
    if raw is not None:
        assert raw.argtypes == [ctypes.c_void_p] * 4 and raw.restype is ctypes.c_int


# -------------------------------------------------------- the driver call of a PointerLaunch
def _pointer_launch(monkeypatch: pytest.MonkeyPatch, raw, stream: int = 0):
    """A PointerLaunch (two tensors per call, then an int32 and a float) around a real CUlaunchConfig,
    with the ctypes launcher replaced by `raw`; the current stream is `stream`."""
    from cuda.bindings import driver as cu

    from fp8gemm.jit import runtime

    monkeypatch.setattr(runtime, "_raw_launcher", lambda: raw)
    monkeypatch.setattr(runtime, "_driver", lambda: cu)
    monkeypatch.setattr(runtime, "_current_device", lambda: 0)
    monkeypatch.setattr(runtime, "_raw_stream", lambda device: stream)
    kernel = _kernel()
    kernel._param_sizes[0] = (8, 8, 4, 4)
    fixed = (ctypes.c_int32(64), ctypes.c_float(0.5))
    return runtime.PointerLaunch(kernel, 0, cu.CUfunction(), cu.CUlaunchConfig(), (1, 32, 0), 2, fixed), fixed


def test_a_pointer_launch_passes_each_calls_tensors_and_its_own_copy_of_the_scalars(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def raw(cfg, fn, params, extra):  # read the packed arguments while the call is made
        seen.append(tuple(struct.unpack(fmt, _pointee(params, i, size))[0]
                          for i, (fmt, size) in enumerate([("<Q", 8), ("<Q", 8), ("<i", 4), ("<f", 4)])))
        return 0

    launch, fixed = _pointer_launch(monkeypatch, raw)
    fixed[0].value = -1  # the launch holds copies of its scalars
    a, b, c = (torch.zeros(4, dtype=torch.uint8) for _ in range(3))
    launch.run(a, b)
    launch.run(c, a)
    assert seen == [(a.data_ptr(), b.data_ptr(), 64, 0.5), (c.data_ptr(), a.data_ptr(), 64, 0.5)]


def test_a_pointer_launch_on_another_stream_goes_through_kernel_launch(monkeypatch) -> None:
    from fp8gemm.jit import runtime

    launch, fixed = _pointer_launch(monkeypatch, lambda *args: 0)
    monkeypatch.setattr(runtime, "_raw_stream", lambda device: 7)   # not the prepared stream (0)
    calls = []
    monkeypatch.setattr(launch.kernel, "launch", lambda *args: calls.append(args))
    a, b = torch.zeros(4), torch.zeros(4)
    launch.run(a, b)
    [(grid, block, smem, args)] = calls
    assert (grid, block, smem) == (1, 32, 0) and args[0] is a and args[1] is b
    assert [type(x) for x in args[2:]] == [ctypes.c_int32, ctypes.c_float]
    assert [x.value for x in args[2:]] == [f.value for f in fixed]


def test_a_pointer_launch_holds_no_tensor_and_refuses_non_tensors_in_front(monkeypatch) -> None:
    from fp8gemm.jit import runtime

    kernel = _kernel()
    monkeypatch.setattr(runtime, "_current_device", lambda: 0)
    monkeypatch.setattr(runtime, "_raw_stream", lambda device: 0)
    monkeypatch.setattr(kernel, "_setup", lambda *args: (None, None))
    kernel._param_sizes[0] = (8, 4)
    with pytest.raises(TypeError, match="first 1 arguments of a PointerLaunch must be tensors"):
        kernel.prepare_pointers(1, 32, 0, (ctypes.c_int64(1), ctypes.c_int32(2)), 1)
    monkeypatch.setattr(runtime, "PointerLaunch", lambda *args: args)
    made = kernel.prepare_pointers(1, 32, 0, (torch.zeros(4), ctypes.c_int32(2)), 1)
    assert not any(isinstance(a, torch.Tensor) for a in made[-1])   # only the fixed arguments kept
