"""The public GEMMs: validate, then compute.

CPU tensors go through `fp8gemm.reference` (exact, slow: for development and tests, not for speed).
CUDA tensors go to the JIT-compiled Hopper kernels through `fp8gemm.launch`, after ``sa`` is put in
the TMA-aligned column-major layout the kernels read (a copy when it is row-major: pass it through
`get_col_major_tma_aligned_tensor` once yourself to avoid that per call).

Each function writes into ``out`` and returns None. On CUDA the work runs on the tensors' device (not
necessarily torch's current one) and is queued on that device's current stream.

Two spellings of each GEMM: the established names (``gemm_fp8_fp8_bf16_nt(lhs, rhs, out)`` & co.) and
the newer ones (``fp8_gemm_nt(a, b, d, c=None, recipe=None, compiled_dims="nk",
disable_ue8m0_cast=False)`` & co.), which take the newer keyword arguments too. With a float32 ``d``,
``fp8_gemm_nt`` is the training GEMM (1x128 scales on both operands, FP32 output, optional ``c``):
`fp8gemm.training`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from . import device as _device_module
from . import env, reference, validate
from .device import require_sm90
from .layout import get_col_major_tma_aligned_tensor, is_col_major_tma_aligned
from .training import RECIPE_1X128, fp8_gemm_nt_fp32

__all__ = [
    "gemm_fp8_fp8_bf16_nt",
    "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous",
    "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
    "fp8_gemm_nt",
    "m_grouped_fp8_gemm_nt_contiguous",
    "m_grouped_fp8_gemm_nt_masked",
    "check_contiguous_layout",
    "clear_prepared",
]

TensorPair = tuple[torch.Tensor, torch.Tensor]
check_contiguous_layout = validate.check_contiguous_layout


# NOTES: the per-call path counts every microsecond (the decode issue's budget is 10 us of host time
# per call, ~1 of them the driver's launch): device indices as ints, no device context switch when
# the tensors' device is already current, the launch module imported once.
_current_device = _device_module.current_device_index
_launch_module = None

# ------------------------------------------------------------------------------------- the hot path
# NOTES: the one cache a repeat call touches. A serving loop calls the same GEMM on the same buffers
# every step; the key is the call's whole signature: each tensor's address, shape, strides and dtype,
# the host arguments, the SM-count override and the config selector (tools swap `launch.select_config`
# to force a config). Every argument check depends on nothing else (values of m_indices are never
# read on CUDA), and neither does the prepared launch (config, kernel, tensor maps, packed arguments),
# so a hit skips both: one tuple, one dictionary lookup, one driver call. Addresses imply the device
# (CUDA's unified address space), which the entry records; the entry's launch runs on that device
# (`jit.Launch.run` asks for the current device once: the call itself does not ask). Only CUDA calls
# are kept; a workload that keeps allocating new buffers refills the bounded dictionary from scratch.
# Measured on a CPU-only machine with a no-op launcher (tools/host_path_cpu.py; the H200 hosts run the
# same Python ~3x slower): of a dense hit's ~2.7 us, ~1.7 are the key's 20 tensor reads (~55 ns
# data_ptr, ~100 shape, ~85 stride(), ~40 dtype each; torch has no cheaper read of the same facts),
# ~0.4 its hash and the lookup, ~0.35 the launch.
# The key is spelled out once per layout, in `_dense_key` & co. (a loop over the tensors costs ~1 us
# more than the spelled-out tuple; the call to the helper ~40 ns), for both names of each GEMM and for
# the miss path.
_MAX_PREPARED = 4096
_prepared: dict[tuple, tuple[int, Callable[[], None]]] = {}
_DENSE, _CONTIGUOUS, _MASKED = "dense", "contiguous", "masked"


def clear_prepared() -> None:
    """Forget every prepared call: the next call of each problem is checked and prepared again."""
    _prepared.clear()


def _dense_key(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor) -> tuple:
    """The key of a dense call in `_prepared` (raises for arguments that are not tensors with addresses,
    or before the first CUDA call has imported the launch layer)."""
    (a, sa), (b, sb) = lhs, rhs
    return (_DENSE, a.data_ptr(), a.shape, a.stride(), a.dtype,
            sa.data_ptr(), sa.shape, sa.stride(), sa.dtype,
            b.data_ptr(), b.shape, b.stride(), b.dtype,
            sb.data_ptr(), sb.shape, sb.stride(), sb.dtype,
            out.data_ptr(), out.shape, out.stride(), out.dtype,
            _device_module._num_sms_override, _launch_module.select_config)


def _contiguous_key(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, m_indices: torch.Tensor) -> tuple:
    """The key of a contiguous grouped call (aligned layout) in `_prepared`."""
    (a, sa), (b, sb) = lhs, rhs
    return (_CONTIGUOUS, a.data_ptr(), a.shape, a.stride(), a.dtype,
            sa.data_ptr(), sa.shape, sa.stride(), sa.dtype,
            b.data_ptr(), b.shape, b.stride(), b.dtype,
            sb.data_ptr(), sb.shape, sb.stride(), sb.dtype,
            out.data_ptr(), out.shape, out.stride(), out.dtype,
            m_indices.data_ptr(), m_indices.shape, m_indices.stride(), m_indices.dtype,
            _device_module._num_sms_override, _launch_module.select_config)


def _masked_key(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, masked_m: torch.Tensor,
                expected_m: int) -> tuple:
    """The key of a masked grouped call in `_prepared`."""
    (a, sa), (b, sb) = lhs, rhs
    # type(expected_m): True == 1 and hash(True) == hash(1), but a bool is refused.
    return (_MASKED, a.data_ptr(), a.shape, a.stride(), a.dtype,
            sa.data_ptr(), sa.shape, sa.stride(), sa.dtype,
            b.data_ptr(), b.shape, b.stride(), b.dtype,
            sb.data_ptr(), sb.shape, sb.stride(), sb.dtype,
            out.data_ptr(), out.shape, out.stride(), out.dtype,
            masked_m.data_ptr(), masked_m.shape, masked_m.stride(), masked_m.dtype,
            expected_m, type(expected_m), _device_module._num_sms_override, _launch_module.select_config)


class _OnDevice:
    """A prepared launch that runs on the current device (a test's recorder), made to run on its own
    device like a `jit.Launch`: the entries' ``run`` is what a hit calls."""

    __slots__ = ("device", "prepared")

    def __init__(self, device: int, prepared: Callable[[], None]):
        self.device, self.prepared = device, prepared

    def run(self) -> None:
        if self.device == _current_device():
            self.prepared()
        else:
            with _on_device(self.device):
                self.prepared()

    __call__ = run


def _remember(key: tuple, device: int, prepared: Callable[[], None] | None) -> None:
    if prepared is None:  # a launcher that prepares nothing (tests' recorders)
        return
    from .jit import Launch

    if not isinstance(prepared, Launch):
        prepared = _OnDevice(device, prepared)
    if len(_prepared) >= _MAX_PREPARED:
        _prepared.clear()
    _prepared[key] = (device, prepared)


def _launch():
    # Imported on the first CUDA call: the launch layer pulls in the JIT (NVRTC, driver API), which
    # CPU users never need.
    global _launch_module
    if _launch_module is None:
        from . import launch

        _launch_module = launch
    return _launch_module


def _on_device(device: torch.device | int) -> contextlib.AbstractContextManager:
    """Make `device` torch's current device for the launch: the kernel is loaded in its context and
    queued on its current stream, the SM count and scratch memory are its own."""
    return torch.cuda.device(device)


def _cuda(name: str, device: int, *args: object) -> Callable[[], None] | None:
    """Run `launch.<name>(*args)` with `device` current; returns the prepared launch it made."""
    require_sm90(device)  # before anything is compiled or loaded (cached per device)
    fn = getattr(_launch(), name)
    if device == _current_device():
        return fn(*args)
    with _on_device(device):
        return fn(*args)


def gemm_fp8_fp8_bf16_nt(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor) -> None:
    """Dense FP8 GEMM ``out = A @ B^T`` with 1x128 activation and 128x128 weight scales.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[m, k]`` contiguous (K-major, k % 16 == 0); sa float32
            ``[m, ceil(k/128)]``, row-major or TMA-aligned column-major (faster on CUDA).
        rhs: ``(b, sb)``: b float8_e4m3fn ``[n, k]`` contiguous (B transposed); sb float32
            ``[ceil(n/128), ceil(k/128)]`` contiguous.
        out: bfloat16 ``[m, n]`` contiguous (n % 8 == 0), overwritten.

    All tensors on one device; ``a``, ``b``, ``out`` (and a TMA-aligned ``sa``) start at 16-byte
    aligned addresses. Semantics: `fp8gemm.reference.gemm_nt_reference`.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
        fp8gemm.device.UnsupportedGPUError: CUDA tensors on a GPU that is not sm_90 (Hopper).
    """
    try:
        key = _dense_key(lhs, rhs, out)
        hit = _prepared.get(key)
    except Exception:  # not tensors, no address (fake, meta), no CUDA call yet: the full path says
        key = hit = None
    if hit is not None:
        hit[1].run()
        return
    _dense(lhs, rhs, out, key)


def _dense(lhs: object, rhs: object, out: object, key: tuple | None) -> None:
    a, sa, b, sb = validate.check_dense(lhs, rhs, out)
    if a.shape[0] == 0:
        return
    if not a.is_cuda:
        reference.gemm_nt_reference(a, sa, b, sb, out)
        return
    converted = not is_col_major_tma_aligned(sa)
    if converted:
        sa = get_col_major_tma_aligned_tensor(sa)
    if key is None or converted:  # a converted sa is a new tensor every call: its own key
        _launch()  # imported before the key, which names its config selector
        key = _dense_key((a, sa), (b, sb), out)
        if (hit := _prepared.get(key)) is not None:
            hit[1].run()
            return
    device = out.get_device()
    _remember(key, device, _cuda("gemm_dense", device, a, sa, b, sb, out))


def m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(
    lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, m_indices: torch.Tensor, *,
    groups_aligned: bool = True,
) -> None:
    """M-grouped FP8 GEMM (MoE prefill): groups of rows concatenated along M, one B per group.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[M, k]`` contiguous; sa float32 ``[M, ceil(k/128)]``,
            row-major or TMA-aligned column-major.
        rhs: ``(b, sb)``: b float8_e4m3fn ``[g, n, k]`` contiguous; sb float32
            ``[g, ceil(n/128), ceil(k/128)]``.
        out: bfloat16 ``[M, n]`` contiguous; rows whose index is -1 are left untouched.
        m_indices: int32 ``[M]``: the group of each row, in ``[0, g)``, or -1 for a padding row.
        groups_aligned: whether ``m_indices`` has the aligned layout: each group's rows start at a
            multiple of `get_m_alignment_for_contiguous_layout()` (128), with -1 padding only after
            them (exactly: `fp8gemm.validate.contiguous_layout_problem`). That is the fast path, and
            the GPU never reads ``m_indices`` on the host for it. ``False`` accepts any layout
            (rows of a group anywhere, in any order): on the GPU the rows are regrouped first
            (`fp8gemm.contiguous`; scratch memory, a few gathers, still no synchronization).

    Values of ``m_indices``: on CPU tensors they are always checked; ids outside ``[-1, g)`` raise
    ``ValueError``, and so does an unaligned layout with ``groups_aligned=True`` (the GPU would leave
    rows unwritten). On CUDA they are checked the same way only with ``FP8GEMM_CHECK_INPUTS=1``
    (reading them synchronizes); unchecked, rows with an out-of-range id are left untouched, like -1
    rows, and an unaligned layout passed as aligned leaves some rows unwritten.

    Semantics: `fp8gemm.reference.m_grouped_contiguous_reference`.
    """
    key = None
    # The fast path's only layout, unchecked values (None: FP8GEMM_CHECK_INPUTS not read yet, the full
    # path reads it).
    if groups_aligned is True and env._kept_check_inputs is False:
        try:
            key = _contiguous_key(lhs, rhs, out, m_indices)
            hit = _prepared.get(key)
        except Exception:
            key = hit = None
        if hit is not None:
            hit[1].run()
            return
    _contiguous(lhs, rhs, out, m_indices, groups_aligned, key)


def _contiguous(lhs: object, rhs: object, out: object, m_indices: object, groups_aligned: object,
                key: tuple | None) -> None:
    a, sa, b, sb = validate.check_contiguous(lhs, rhs, out, m_indices)
    if not isinstance(groups_aligned, bool):
        raise TypeError(f"groups_aligned: expected a bool, got {type(groups_aligned).__name__}")
    if not a.is_cuda or env.check_inputs():
        validate.check_contiguous_layout(m_indices, b.shape[0], require_aligned=groups_aligned)
    if a.shape[0] == 0:
        return
    if not a.is_cuda:
        reference.m_grouped_contiguous_reference(a, sa, b, sb, out, m_indices)
        return
    if not is_col_major_tma_aligned(sa):
        sa = get_col_major_tma_aligned_tensor(sa)
        key = None  # a new tensor every call: its own key
    if groups_aligned:
        _contiguous_aligned(a, sa, b, sb, out, m_indices, key)
        return
    from .contiguous import gemm_any_layout

    require_sm90(out.device)
    with _on_device(out.device):
        gemm_any_layout(a, sa, b, sb, out, m_indices, _contiguous_aligned)


def _contiguous_aligned(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
                        out: torch.Tensor, m_indices: torch.Tensor, key: tuple | None = None) -> None:
    """The aligned-layout kernel on checked CUDA tensors (also the any-layout path's, on its scratch
    buffers), through `_prepared`."""
    if key is None:
        _launch()  # imported before the key, which names its config selector
        key = _contiguous_key((a, sa), (b, sb), out, m_indices)
        if (hit := _prepared.get(key)) is not None:
            hit[1].run()
            return
    device = out.get_device()
    _remember(key, device, _cuda("gemm_contiguous", device, a, sa, b, sb, out, m_indices))


def m_grouped_gemm_fp8_fp8_bf16_nt_masked(
    lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, masked_m: torch.Tensor, expected_m: int
) -> None:
    """M-grouped FP8 GEMM (MoE decode): each group padded to max_m rows, a per-group valid-row count.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[g, max_m, k]`` contiguous; sa float32
            ``[g, max_m, ceil(k/128)]``, row-major or TMA-aligned column-major.
        rhs: ``(b, sb)``: b float8_e4m3fn ``[g, n, k]`` contiguous; sb float32
            ``[g, ceil(n/128), ceil(k/128)]``.
        out: bfloat16 ``[g, max_m, n]`` contiguous; rows at or past ``masked_m[i]`` are left untouched.
        masked_m: int32 ``[g]`` on the same device: group i's rows ``[0, masked_m[i])`` are computed.
            Values are clamped to ``[0, max_m]`` (never read on the host).
        expected_m: positive host integer (int or numpy integer), a hint of the typical ``masked_m``
            for choosing the kernel config.

    Semantics: `fp8gemm.reference.m_grouped_masked_reference`.
    """
    try:
        key = _masked_key(lhs, rhs, out, masked_m, expected_m)
        hit = _prepared.get(key)
    except Exception:
        key = hit = None
    if hit is not None:
        hit[1].run()
        return
    _masked(lhs, rhs, out, masked_m, expected_m, key)


def _masked(lhs: object, rhs: object, out: object, masked_m: object, expected_m: object,
            key: tuple | None) -> None:
    a, sa, b, sb = validate.check_masked(lhs, rhs, out, masked_m, expected_m)
    if a.shape[1] == 0:
        return
    if not a.is_cuda:
        reference.m_grouped_masked_reference(a, sa, b, sb, out, masked_m)
        return
    converted = not is_col_major_tma_aligned(sa)
    if converted:
        sa = get_col_major_tma_aligned_tensor(sa)
    if key is None or converted:  # a converted sa is a new tensor every call: its own key
        _launch()  # imported before the key, which names its config selector
        key = _masked_key((a, sa), (b, sb), out, masked_m, expected_m)
        if (hit := _prepared.get(key)) is not None:
            hit[1].run()
            return
    device = out.get_device()
    expected = validate.check_host_int(expected_m, "expected_m")  # a numpy integer becomes an int
    _remember(key, device, _cuda("gemm_masked", device, a, sa, b, sb, out, masked_m, expected))


# ----------------------------------------------------------------------------------- newer names
_RECIPE = (1, 128, 128)


def _check_newer_arguments(a: object, b: object, c: object, recipe: object, compiled_dims: object,
                           disable_ue8m0_cast: object) -> None:
    """The keyword arguments of the newer names: what is supported works, the rest says so."""
    if c is not None:
        raise NotImplementedError(
            "c: an FP32 accumulator (d = c + a @ b.T) needs an FP32 d and 1x128 scales on both operands "
            "(the training GEMM); with a BF16 d pass c=None: d is overwritten with the BF16 product."
        )
    if recipe is not None:
        if not isinstance(recipe, (tuple, list)) or tuple(recipe) != _RECIPE:
            raise NotImplementedError(
                f"recipe: only {_RECIPE} (1x128 activation scales, 128x128 weight scales) is supported "
                f"with a BF16 d ({RECIPE_1X128}, 1x128 on both, takes an FP32 d), got {recipe!r}"
            )
    if not isinstance(compiled_dims, str):
        raise TypeError(f"compiled_dims: expected a str, got {type(compiled_dims).__name__}")
    if not isinstance(disable_ue8m0_cast, bool):
        raise TypeError(f"disable_ue8m0_cast: expected a bool, got {type(disable_ue8m0_cast).__name__}")
    for pair, name in ((a, "a"), (b, "b")):
        if isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[1], torch.Tensor) \
                and pair[1].dtype == torch.int32:
            raise NotImplementedError(
                f"{name}[1]: int32 scales (packed UE8M0, the sm_100 format) are not supported; on sm_90 "
                "the scales are float32"
            )


def _plain(c: object, recipe: object, compiled_dims: object, disable_ue8m0_cast: object) -> bool:
    """Whether the newer keywords are ones `_check_newer_arguments` passes without looking at tensors.

    NOTES: then a newer name's repeat call takes the established name's hit path directly. What the
    full checks add (int32 scales refused with a clearer error, an FP32 ``d`` sent to the training
    GEMM) concerns dtypes the key holds and no kept call has, so those calls miss and get the full
    checks. Measured (tools/host_path_cpu.py): a repeat fp8_gemm_nt call 3.66 -> 2.87 us, the grouped
    ones 4.1-4.25 -> 3.4-3.55 us, against 2.7-3.4 us for the established names."""
    return c is None and recipe is None and type(compiled_dims) is str and type(disable_ue8m0_cast) is bool


def fp8_gemm_nt(
    a: TensorPair, b: TensorPair, d: torch.Tensor, c: torch.Tensor | None = None,
    recipe: tuple[int, int, int] | None = None, compiled_dims: str = "nk", disable_ue8m0_cast: bool = False,
) -> None:
    """The dense GEMM under its newer name: BF16 ``d = a @ b.T``, or FP32 ``d = c + a @ b.T``.

    The dtype of ``d`` picks the GEMM:

    * bfloat16 ``d``: `gemm_fp8_fp8_bf16_nt` (1x128 scales on a, 128x128 on b); ``c`` must be None.
    * float32 ``d``: the training GEMM, 1x128 scales on both operands (``sb`` is ``[n, ceil(k/128)]``)
      and an optional accumulator ``c`` (in place when ``d is c``): `fp8gemm.training.fp8_gemm_nt_fp32`,
      semantics `fp8gemm.reference.gemm_nt_fp32_reference`. On CUDA tensors it computes through that
      reference code on the GPU for now: correct, not yet accelerated.

    Args:
        a: ``(a, sa)`` as ``lhs`` of `gemm_fp8_fp8_bf16_nt`.
        b: ``(b, sb)`` as ``rhs`` (BF16 ``d``), or with 1x128 scales ``sb [n, ceil(k/128)]`` (FP32 ``d``).
        d: bfloat16 or float32 ``[m, n]``, overwritten (``out``).
        c: None; with an FP32 ``d`` also ``d`` itself or a float32 ``[m, n]`` (``NotImplementedError``
            with a BF16 ``d``).
        recipe: None, or ``(1, 128, 128)`` with a BF16 ``d``, ``(1, 1, 128)`` with an FP32 ``d`` (else
            ``NotImplementedError``).
        compiled_dims: accepted and ignored: N and K are always compile-time constants here.
        disable_ue8m0_cast: accepted, no effect: on sm_90 the scales are float32 and never cast to
            UE8M0 (int32 UE8M0 scales raise ``NotImplementedError``).
    """
    if _plain(c, recipe, compiled_dims, disable_ue8m0_cast):
        try:
            hit = _prepared.get(_dense_key(a, b, d))
        except Exception:
            hit = None
        if hit is not None:
            hit[1].run()
            return
    if isinstance(d, torch.Tensor) and d.dtype == torch.float32:
        _check_newer_arguments(a, b, None, None, compiled_dims, disable_ue8m0_cast)
        fp8_gemm_nt_fp32(a, b, d, c, recipe)
        return
    _check_newer_arguments(a, b, c, recipe, compiled_dims, disable_ue8m0_cast)
    gemm_fp8_fp8_bf16_nt(a, b, d)


def m_grouped_fp8_gemm_nt_contiguous(
    a: TensorPair, b: TensorPair, d: torch.Tensor, grouped_layout: torch.Tensor | None = None,
    recipe: tuple[int, int, int] | None = None, compiled_dims: str = "nk", disable_ue8m0_cast: bool = False,
    *, m_indices: torch.Tensor | None = None, groups_aligned: bool = True,
) -> None:
    """`m_grouped_gemm_fp8_fp8_bf16_nt_contiguous` under its newer name and parameter names.

    Args:
        a, b, d: ``lhs``, ``rhs``, ``out``.
        grouped_layout: the row-to-group map (``m_indices``; that keyword is accepted too).
        recipe, compiled_dims, disable_ue8m0_cast: as in `fp8_gemm_nt`.
        groups_aligned: as in `m_grouped_gemm_fp8_fp8_bf16_nt_contiguous`.
    """
    if (grouped_layout is None) == (m_indices is None):
        raise TypeError("grouped_layout: expected exactly one of grouped_layout= and m_indices=, got "
                        + ("both" if m_indices is not None else "neither"))
    layout = grouped_layout if grouped_layout is not None else m_indices
    if groups_aligned is True and env._kept_check_inputs is False \
            and _plain(None, recipe, compiled_dims, disable_ue8m0_cast):
        try:
            hit = _prepared.get(_contiguous_key(a, b, d, layout))
        except Exception:
            hit = None
        if hit is not None:
            hit[1].run()
            return
    _check_newer_arguments(a, b, None, recipe, compiled_dims, disable_ue8m0_cast)
    m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(a, b, d, layout, groups_aligned=groups_aligned)


def m_grouped_fp8_gemm_nt_masked(
    a: TensorPair, b: TensorPair, d: torch.Tensor, masked_m: torch.Tensor, expected_m: int,
    recipe: tuple[int, int, int] | None = None, compiled_dims: str = "nk", disable_ue8m0_cast: bool = False,
) -> None:
    """`m_grouped_gemm_fp8_fp8_bf16_nt_masked` under its newer name and parameter names.

    Args:
        a, b, d: ``lhs``, ``rhs``, ``out``; masked_m, expected_m: as there.
        recipe, compiled_dims, disable_ue8m0_cast: as in `fp8_gemm_nt`.
    """
    if _plain(None, recipe, compiled_dims, disable_ue8m0_cast):
        try:
            hit = _prepared.get(_masked_key(a, b, d, masked_m, expected_m))
        except Exception:
            hit = None
        if hit is not None:
            hit[1].run()
            return
    _check_newer_arguments(a, b, None, recipe, compiled_dims, disable_ue8m0_cast)
    m_grouped_gemm_fp8_fp8_bf16_nt_masked(a, b, d, masked_m, expected_m)
