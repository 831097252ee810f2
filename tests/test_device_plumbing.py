"""Which GPU and which stream a launch uses, and what happens on a GPU that is not a Hopper: on the CPU,
with torch's device switch and the driver replaced by recorders (the real ones need GPUs).

The chain under test: the public function makes the tensors' device current (`gemm._on_device`, i.e.
``torch.cuda.device``), and the JIT's launch takes the current device's function and that device's
current stream. So tensors on cuda:1 run on cuda:1 and its stream, whatever device was current.
"""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import pytest
import torch

import fp8gemm
from fp8gemm import device, gemm, quant_cuda
from fp8gemm.jit import runtime
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources


class FakeGPUs:
    """torch's current-device switch and the driver's launch, recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, current: int = 0) -> None:
        from cuda.bindings import driver as real

        self.current = current
        self.switches: list[int] = []
        self.launches: list[tuple[int, object, int]] = []  # (current device, function, stream handle)
        outer = self

        def exchange(index: int) -> int:
            previous, outer.current = outer.current, index
            outer.switches.append(index)
            return previous

        class Driver:
            def __getattr__(self, name):
                return getattr(real, name)

            def cuLaunchKernelEx(self, cfg, fn, params, extra):  # noqa: N802 (the driver's name)
                outer.launches.append((outer.current, fn, int(cfg.hStream)))
                return (real.CUresult.CUDA_SUCCESS,)

        monkeypatch.setattr(torch.cuda, "_exchange_device", exchange)
        monkeypatch.setattr(torch.cuda, "_maybe_exchange_device", exchange)
        monkeypatch.setattr(runtime, "_current_device", lambda: self.current)
        monkeypatch.setattr(runtime, "_raw_stream", self.stream_of)
        monkeypatch.setattr(runtime, "_driver", lambda: Driver())
        monkeypatch.setattr(runtime, "_raw_launcher", lambda: None)  # launches go to the recorder
        monkeypatch.setattr(device, "_capability", lambda index: (9, 0))

    @staticmethod
    def stream_of(index: int) -> int:
        return 0x1000 + index  # "the current stream of device `index`"

    def kernel(self) -> runtime.Kernel:
        """A Kernel already 'loaded' on devices 0 and 1 (function handles 'fn0', 'fn1')."""
        compiled = CompiledKernel(name="k", cubin=b"\x7fELF", resources=PtxasResources(8, 0, 0, 0, 0),
                                  compile_seconds=0.0, compiler="test")
        kernel = runtime.Kernel(compiled)
        for index in (0, 1):
            kernel._functions[index] = f"fn{index}"
            kernel._param_sizes[index] = (4,)
            kernel._smem_set[index] = 1 << 20
        return kernel


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> FakeGPUs:
    return FakeGPUs(monkeypatch)


@pytest.mark.parametrize("how", ["launch", "prepared"])
@pytest.mark.parametrize("target", [0, 1])
def test_launch_runs_on_the_tensors_device_and_its_stream(gpus: FakeGPUs, monkeypatch, how, target) -> None:
    kernel = gpus.kernel()
    prepared = {}

    def launcher(*args):
        if how == "launch":
            kernel.launch(1, 128, 0, (ctypes.c_int32(7),))
        else:  # the GEMMs' hot path: prepared once on the device, then called
            prepared.setdefault(gpus.current, kernel.prepare(1, 128, 0, (ctypes.c_int32(7),)))()

    monkeypatch.setattr(gemm, "_launch", lambda: SimpleNamespace(gemm_dense=launcher))
    monkeypatch.setattr(gemm, "_current_device", lambda: gpus.current)
    gpus.current = 0  # cuda:0 is torch's current device
    for _ in range(2):
        gemm._cuda("gemm_dense", target)
    assert gpus.launches == [(target, f"fn{target}", FakeGPUs.stream_of(target))] * 2
    assert gpus.current == 0  # and the caller's current device is restored
    # The switch happens only when needed (it costs host time on every call).
    assert gpus.switches[::2] == ([target, target] if target != 0 else [])


def test_a_prepared_launch_runs_on_its_own_device(gpus: FakeGPUs) -> None:
    """`jit.Launch.run` (what a repeat GEMM call runs; ``launch()`` is the same): prepared on cuda:1 and
    called with cuda:0 current, it launches on cuda:1 and its stream, and cuda:0 is current again."""
    kernel = gpus.kernel()
    gpus.current = 1
    launch = kernel.prepare(1, 128, 0, (ctypes.c_int32(7),))
    gpus.current = 0
    launch.run()
    launch()
    assert gpus.launches == [(1, "fn1", FakeGPUs.stream_of(1))] * 2
    assert gpus.current == 0 and gpus.switches == [1, 0, 1, 0]


def test_repeat_calls_run_the_kept_launch_on_the_tensors_device(gpus: FakeGPUs, monkeypatch) -> None:
    """A repeat call asks nothing about devices itself: its kept `jit.Launch` makes its device current."""
    from fp8gemm.layout import get_col_major_tma_aligned_tensor

    kernel = gpus.kernel()

    def gemm_dense(*args):
        launch = kernel.prepare(1, 128, 0, (ctypes.c_int32(7),))
        launch()
        return launch

    monkeypatch.setattr(gemm, "_launch_module", SimpleNamespace(gemm_dense=gemm_dense, select_config=None))
    monkeypatch.setattr(gemm, "_current_device", lambda: gpus.current)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: 1, raising=False)
    a, b = torch.zeros(8, 256, dtype=torch.float8_e4m3fn), torch.zeros(128, 256, dtype=torch.float8_e4m3fn)
    sa, sb = get_col_major_tma_aligned_tensor(torch.ones(8, 2)), torch.ones(1, 2)
    out = torch.zeros(8, 128, dtype=torch.bfloat16)
    gemm.clear_prepared()
    try:
        for _ in range(3):
            gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)
        assert len(gemm._prepared) == 1
    finally:
        gemm.clear_prepared()
    assert gpus.launches == [(1, "fn1", FakeGPUs.stream_of(1))] * 3 and gpus.current == 0


def test_every_public_function_goes_through_the_device_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each public GEMM hands its launch to `_cuda` with ``out``'s device index (checked with the CUDA
    branch forced on CPU tensors, and the validation and launch replaced)."""
    from fp8gemm import validate

    calls = []
    monkeypatch.setattr(gemm, "_cuda", lambda name, dev, *args: calls.append((name, dev)))
    for check in ("check_dense", "check_contiguous", "check_masked"):
        monkeypatch.setattr(validate, check, lambda lhs, rhs, out, *extra: (*lhs, *rhs))
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: 1, raising=False)
    x = torch.zeros(4, 4)
    gemm.gemm_fp8_fp8_bf16_nt((x, x), (x, x), x)
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x, x), (x.view(1, 4, 4), x), x, x[0])
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.view(1, 4, 4), x), (x.view(1, 4, 4), x), x, x[0], 4)
    assert calls == [("gemm_dense", 1), ("gemm_contiguous", 1), ("gemm_masked", 1)]


# ------------------------------------------------------------------------------- non-Hopper GPUs
@pytest.mark.parametrize("capability,name,generation", [
    ((8, 0), "NVIDIA A100-SXM4-80GB", "Ampere/Ada"),
    ((8, 9), "NVIDIA L40S", "Ampere/Ada"),
    ((10, 0), "NVIDIA B200", "Blackwell"),
])
def test_other_gpus_get_a_clear_error_before_anything_is_built(monkeypatch, capability, name,
                                                               generation) -> None:
    monkeypatch.setattr(device, "_capability", lambda index: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: name)
    built = []
    monkeypatch.setattr(gemm, "_launch", lambda: built.append("launch module"))
    major, minor = capability
    expected = rf"cuda:1 is {name} \(sm_{major}{minor}, {generation}\): .* need an sm_90 \(Hopper"
    with pytest.raises(fp8gemm.UnsupportedGPUError, match=expected):
        gemm._cuda("gemm_dense", 1)
    assert built == []  # nothing was compiled, loaded or launched
    assert issubclass(fp8gemm.UnsupportedGPUError, RuntimeError)


def test_hopper_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_capability", lambda index: (9, 0))
    device.require_sm90(torch.device("cuda", 0))
    device.require_sm90(3)


def test_activation_cast_falls_back_to_torch_off_hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cast kernel is sm_90a too; elsewhere the torch computation (same bits) runs instead."""
    x = torch.zeros(4, 128)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda", 0)), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device, "_capability", lambda index: (9, 0))
    assert quant_cuda.supports(x)
    monkeypatch.setattr(device, "_capability", lambda index: (8, 0))
    assert not quant_cuda.supports(x)
