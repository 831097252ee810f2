"""The JIT runtime on an H200: the TMA round-trip kernel checked byte for byte, streams, CUDA graphs,
argument errors, and the host cost of a launch."""

from __future__ import annotations

import ctypes

import pytest
import torch

from benchmarks.jit_selftest import (
    PROBE_KERNEL,
    PROBE_SOURCE,
    ROUNDTRIP_CASES,
    ROUNDTRIP_KERNEL,
    probe_args,
    random_bytes,
    roundtrip_source,
    run_roundtrip,
)
from fp8gemm.jit import CudaDriverError, build, compile_cuda, load

SM90 = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not SM90, reason="needs an sm_90 GPU")]


def _fill_kernel(name: str):
    """A kernel `name(out, n, value)` that writes out[i] = value + i (mod 256) for i < n."""
    source = f"""extern "C" __global__ void {name}(unsigned char* out, int n, unsigned int value) {{
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) out[i] = (unsigned char)(value + i);
    }}"""
    return build(source, name)


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


@pytest.mark.parametrize("dtype,box_rows,box_cols,swizzle", ROUNDTRIP_CASES)
@pytest.mark.parametrize("rows,cols_bytes", [(256, 512), (300, 528), (70, 272)])  # ragged edges
def test_roundtrip_every_byte(dtype, box_rows, box_cols, swizzle, rows, cols_bytes):
    x = random_bytes(rows, cols_bytes, seed=rows).view(dtype)
    out0, out1 = run_roundtrip(x, box_rows, box_cols, swizzle)
    torch.cuda.synchronize()
    # Both CTAs of each cluster stored the whole tile: multicast delivered both halves to both.
    assert _same_bytes(out0, x)
    assert _same_bytes(out1, x)


def test_large_dynamic_smem_is_raised():
    x = random_bytes(256, 512)
    out0, out1 = run_roundtrip(x, 64, 128, 128, smem_bytes=200 * 1024)  # > 48 KiB needs the opt-in
    torch.cuda.synchronize()
    assert _same_bytes(out0, x) and _same_bytes(out1, x)


def test_too_much_smem_is_a_clear_error():
    with pytest.raises(ValueError, match="shared memory exceeds"):
        run_roundtrip(random_bytes(64, 128), 64, 128, 128, smem_bytes=300 * 1024)


def test_side_stream():
    x = random_bytes(300, 528)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out0, out1 = run_roundtrip(x, 64, 128, 128)
    stream.synchronize()
    assert _same_bytes(out0, x) and _same_bytes(out1, x)
    out2, out3 = run_roundtrip(x, 64, 128, 128, stream=stream)  # explicit stream argument
    stream.synchronize()
    assert _same_bytes(out2, x) and _same_bytes(out3, x)


def test_cuda_graph_capture_and_replay():
    x = random_bytes(300, 528)
    outs = (torch.empty_like(x), torch.empty_like(x))
    run_roundtrip(x, 64, 128, 128, outputs=outs)  # warm-up: loads the module outside the capture
    torch.cuda.synchronize()
    for o in outs:
        o.fill_(0xA5)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run_roundtrip(x, 64, 128, 128, outputs=outs)
    torch.cuda.synchronize()
    assert all((o == 0xA5).all() for o in outs)  # captured, not run
    graph.replay()
    torch.cuda.synchronize()
    assert _same_bytes(outs[0], x) and _same_bytes(outs[1], x)
    x.copy_(random_bytes(300, 528, seed=7))  # same addresses, new data: the replay must see it
    graph.replay()
    torch.cuda.synchronize()
    assert _same_bytes(outs[0], x) and _same_bytes(outs[1], x)


def test_one_kernel_object_per_cubin():
    compiled = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert load(compiled) is load(compiled)
    assert build(PROBE_SOURCE, PROBE_KERNEL) is load(compiled)


def test_argument_errors_are_readable():
    kernel, args, _keep = probe_args()
    with pytest.raises(TypeError, match="takes 10 arguments, got 9"):
        kernel.launch(1, 32, 0, args[:-1])
    with pytest.raises(TypeError, match="got int"):
        kernel.launch(1, 32, 0, (*args[:-1], 3))
    with pytest.raises(TypeError, match="parameter is 4 bytes"):
        kernel.launch(1, 32, 0, (*args[:4], ctypes.c_int64(1), *args[5:]))
    with pytest.raises(ValueError, match="multiple of the cluster size"):
        kernel.launch(3, 32, 0, args, cluster=2)


def test_driver_errors_are_readable():
    kernel, args, _keep = probe_args()
    with pytest.raises(CudaDriverError, match="CUDA_ERROR_INVALID_VALUE"):
        kernel.launch(1, 4096, 0, args)  # more threads than a block may have
    kernel.launch(1, 32, 0, args)  # and the context is still fine
    torch.cuda.synchronize()


def test_tensor_argument_is_a_device_pointer():
    kernel = _fill_kernel("fill")
    out = torch.zeros(1000, dtype=torch.uint8, device="cuda")
    kernel.launch(8, 128, 0, (out, ctypes.c_int32(1000), ctypes.c_uint32(5)))
    torch.cuda.synchronize()
    expected = (torch.arange(1000, device="cuda") + 5).to(torch.uint8)
    assert torch.equal(out, expected)


def test_prepared_launch_keeps_its_arguments_and_follows_the_stream():
    kernel = _fill_kernel("fill2")
    out = torch.zeros(1000, dtype=torch.uint8, device="cuda")
    n, value = ctypes.c_int32(1000), ctypes.c_uint32(5)
    launch = kernel.prepare(8, 128, 0, (out, n, value))
    n.value, value.value = 0, 99  # the prepared launch holds copies
    launch()
    torch.cuda.synchronize()
    assert torch.equal(out, (torch.arange(1000, device="cuda") + 5).to(torch.uint8))
    # On another stream, ordered after a long kernel there: it must run on that stream, after it.
    out.zero_()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(2_000_000)
        launch()
        done = torch.cuda.Event()
        done.record()
    assert not done.query()  # queued behind the sleep on the side stream, not run at once
    done.synchronize()
    assert torch.equal(out, (torch.arange(1000, device="cuda") + 5).to(torch.uint8))


def test_pointer_launch_takes_each_calls_tensors_and_follows_the_stream():
    kernel = _fill_kernel("fill3")
    expected = (torch.arange(1000, device="cuda") + 5).to(torch.uint8)
    a, b, c = (torch.zeros(1000, dtype=torch.uint8, device="cuda") for _ in range(3))
    launch = kernel.prepare_pointers(8, 128, 0, (a, ctypes.c_int32(1000), ctypes.c_uint32(5)), 1)
    launch.run(b)
    torch.cuda.synchronize()
    assert torch.equal(b, expected) and not a.any()  # the tensor of the call, not the example
    launch.run(a)
    torch.cuda.synchronize()
    assert torch.equal(a, expected)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(2_000_000)
        launch.run(c)
        done = torch.cuda.Event()
        done.record()
    assert not done.query()  # queued behind the sleep on the side stream
    done.synchronize()
    assert torch.equal(c, expected)


def test_roundtrip_kernel_is_in_the_family():
    # Sanity: the kernel the GPU tests run is the one the CPU tests inspect.
    assert ROUNDTRIP_KERNEL in roundtrip_source(64, 128, 1)
