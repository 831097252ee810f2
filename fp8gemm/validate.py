"""Argument checks for the public GEMMs: everything generic, before anything is computed or launched.

Each check raises `TypeError` (wrong kind of object or dtype) or `ValueError` (rank, shape, stride,
alignment, device, group count) with a message of the form ``"<argument>: expected <what>, got <what>"``.
Limits of one particular kernel (say N a multiple of 64) are not checked here; the launch layer does.

Requirements checked:
    - ``lhs`` and ``rhs`` are pairs ``(tensor, scales)``.
    - ``a``, ``b``: float8_e4m3fn, contiguous (K-major), row stride a multiple of 16 bytes (K % 16 == 0),
      since TMA needs 16-byte aligned global strides.
    - ``sa``: float32, shape ``[..., m, ceil(k / 128)]``, row-major contiguous or TMA-aligned column-major.
    - ``sb``: float32, shape ``[..., ceil(n / 128), ceil(k / 128)]``, contiguous.
    - ``out``: bfloat16, contiguous, row stride a multiple of 16 bytes (N % 8 == 0).
    - ``a``, ``b``, ``out`` and a TMA-aligned ``sa``: data pointers 16-byte aligned (TMA reads and
      writes them); a view at an odd offset is an error naming the argument.
    - ``m_indices``: int32 ``[M]`` contiguous; ``masked_m``: int32 ``[g]`` contiguous; ``expected_m`` a
      positive integer (anything `operator.index` takes: int, numpy integers); group counts agree;
      every tensor on one device, CPU or CUDA.

The *values* of ``m_indices`` are checked by `check_contiguous_layout`: always for CPU tensors, and for
CUDA tensors only when asked (``FP8GEMM_CHECK_INPUTS=1``), since reading them synchronizes.

These checks cost ~25 us of Python; a repeat CUDA call skips them through `fp8gemm.gemm`'s cache of
prepared calls, whose key holds everything they depend on (addresses, shapes, strides, dtypes).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from .layout import is_col_major_tma_aligned
from .utils import BLOCK, ceil_div

__all__ = [
    "check_dense",
    "check_contiguous",
    "check_masked",
    "check_pair",
    "check_tensor",
    "check_devices",
    "check_contiguous_layout",
    "contiguous_layout_problem",
    "check_dense_fp32",
    "check_k_grouped",
    "check_k_grouped_values",
]

_TMA_ALIGNMENT_BYTES = 16
Pair = tuple[torch.Tensor, torch.Tensor]


def check_pair(value: object, name: str) -> Pair:
    """``value`` must be a tuple or list of exactly two tensors ``(data, scales)``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a pair (fp8 tensor, float32 scales), got {type(value).__name__}"
                        + (f" of length {len(value)}" if isinstance(value, Sequence) else ""))
    data, scales = value
    for part, label in ((data, f"{name}[0]"), (scales, f"{name}[1]")):
        if not isinstance(part, torch.Tensor):
            raise TypeError(f"{label}: expected a torch.Tensor, got {type(part).__name__}")
    return data, scales


def check_tensor(x: object, name: str, dtype: torch.dtype, dim: int) -> torch.Tensor:
    """``x`` must be a tensor of ``dtype`` with ``dim`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {x.dtype}")
    if x.dim() != dim:
        raise ValueError(f"{name}: expected {dim} dimensions, got shape {tuple(x.shape)}")
    return x


def _check_shape(x: torch.Tensor, name: str, expected: tuple[int, ...], meaning: str) -> None:
    if tuple(x.shape) != expected:
        raise ValueError(f"{name}: expected shape {list(expected)} ({meaning}), got {list(x.shape)}")


def _check_k_major(x: torch.Tensor, name: str, major: str = "K-major") -> None:
    if not x.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous ({major}) tensor, got strides {x.stride()}")
    row_bytes = x.shape[-1] * x.element_size()
    if row_bytes % _TMA_ALIGNMENT_BYTES:
        raise ValueError(
            f"{name}: expected a row stride that is a multiple of {_TMA_ALIGNMENT_BYTES} bytes "
            f"(last dim % {_TMA_ALIGNMENT_BYTES // x.element_size()} == 0), got {x.shape[-1]} elements "
            f"= {row_bytes} bytes"
        )


def _check_sa_layout(sa: torch.Tensor) -> None:
    if not (sa.is_contiguous() or is_col_major_tma_aligned(sa)):
        raise ValueError(
            "sa: expected a row-major contiguous or TMA-aligned column-major tensor "
            f"(see get_col_major_tma_aligned_tensor), got shape {list(sa.shape)} with strides {sa.stride()}"
        )


def _has_no_address(x: torch.Tensor) -> bool:
    """Tensors at trace time (fake, meta) have no real address to check; the real call checks it."""
    from torch._subclasses.fake_tensor import is_fake

    return x.device.type == "meta" or is_fake(x)


def _check_pointer(x: torch.Tensor, name: str) -> None:
    if _has_no_address(x):
        return
    ptr = x.data_ptr()
    if ptr % _TMA_ALIGNMENT_BYTES:
        raise ValueError(
            f"{name}: expected a data pointer aligned to {_TMA_ALIGNMENT_BYTES} bytes (TMA needs it), got "
            f"{ptr:#x} (storage offset {x.storage_offset()} elements of {x.element_size()} B); "
            "pass a tensor that starts at an aligned address, e.g. x.clone()"
        )


def _check_contiguous(x: torch.Tensor, name: str) -> None:
    if not x.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor, got strides {x.stride()}")


def check_devices(**tensors: torch.Tensor) -> torch.device:
    """All tensors must be on one device, and that device CPU or CUDA. Returns it."""
    items = list(tensors.items())
    first_name, first = items[0]
    if first.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{first_name}: expected a CPU or CUDA tensor, got device {first.device}")
    for name, x in items[1:]:
        if x.device != first.device:
            raise ValueError(
                f"{name}: expected device {first.device} (the device of {first_name}), got {x.device}"
            )
    return first.device


def _check_operands(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor
) -> None:
    """Shapes shared by all three GEMMs; ranks are already checked. Leading dims of b/sb (groups) and
    of a/sa/out (rows) are compared by the callers."""
    m_dims = a.shape[:-1]
    k = a.shape[-1]
    n, kb_of_b = b.shape[-2], b.shape[-1]
    if kb_of_b != k:
        raise ValueError(f"b: expected K = {k} (the last dim of a), got shape {list(b.shape)}")
    if k == 0 or n == 0:
        raise ValueError(f"b: expected n > 0 and k > 0, got shape {list(b.shape)}")
    kb, nb = ceil_div(k, BLOCK), ceil_div(n, BLOCK)
    _check_shape(sa, "sa", (*m_dims, kb), "rows of a, ceil(k/128)")
    sb_meaning = "ceil(n/128), ceil(k/128)" if b.dim() == 2 else "groups of b, ceil(n/128), ceil(k/128)"
    _check_shape(sb, "sb", (*b.shape[:-2], nb, kb), sb_meaning)
    _check_shape(out, "out", (*m_dims, n), "rows of a, n")
    _check_k_major(a, "a")
    _check_k_major(b, "b")
    _check_sa_layout(sa)
    _check_contiguous(sb, "sb")
    _check_k_major(out, "out", "row-major")
    _check_pointer(a, "a")
    _check_pointer(b, "b")
    _check_pointer(out, "out")
    if is_col_major_tma_aligned(sa):  # read in place by TMA (a row-major sa is converted, i.e. copied)
        _check_pointer(sa, "sa")


def _unpack(lhs: object, rhs: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    a, sa = check_pair(lhs, "lhs")
    b, sb = check_pair(rhs, "rhs")
    return a, sa, b, sb


def _check_dtypes_and_ranks(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    a_dim: int, b_dim: int,
) -> None:
    check_tensor(a, "a", torch.float8_e4m3fn, a_dim)
    check_tensor(sa, "sa", torch.float32, a_dim)
    check_tensor(b, "b", torch.float8_e4m3fn, b_dim)
    check_tensor(sb, "sb", torch.float32, b_dim)
    check_tensor(out, "out", torch.bfloat16, a_dim)


def check_dense(lhs: object, rhs: object, out: object) -> tuple[torch.Tensor, ...]:
    """Validate `gemm_fp8_fp8_bf16_nt` arguments; returns ``(a, sa, b, sb)``.

    a ``[m, k]`` e4m3, sa ``[m, ceil(k/128)]`` f32, b ``[n, k]`` e4m3, sb ``[ceil(n/128), ceil(k/128)]`` f32,
    out ``[m, n]`` bf16.
    """
    a, sa, b, sb = _unpack(lhs, rhs)
    _check_dtypes_and_ranks(a, sa, b, sb, out, 2, 2)
    check_devices(a=a, sa=sa, b=b, sb=sb, out=out)
    _check_operands(a, sa, b, sb, out)
    return a, sa, b, sb


def check_contiguous(lhs: object, rhs: object, out: object, m_indices: object) -> tuple[torch.Tensor, ...]:
    """Validate `m_grouped_gemm_fp8_fp8_bf16_nt_contiguous` arguments; returns ``(a, sa, b, sb)``.

    a ``[M, k]`` e4m3, sa ``[M, ceil(k/128)]`` f32, b ``[g, n, k]`` e4m3, sb ``[g, ceil(n/128), ceil(k/128)]``
    f32, out ``[M, n]`` bf16, m_indices int32 ``[M]``. The values of m_indices are not read here (that
    would synchronize with the GPU).
    """
    a, sa, b, sb = _unpack(lhs, rhs)
    _check_dtypes_and_ranks(a, sa, b, sb, out, 2, 3)
    check_tensor(m_indices, "m_indices", torch.int32, 1)
    check_devices(a=a, sa=sa, b=b, sb=sb, out=out, m_indices=m_indices)
    if b.shape[0] == 0:
        raise ValueError(f"b: expected at least one group, got shape {list(b.shape)}")
    _check_operands(a, sa, b, sb, out)
    _check_shape(m_indices, "m_indices", (a.shape[0],), "one group index per row of a")
    _check_contiguous(m_indices, "m_indices")
    return a, sa, b, sb


def check_masked(
    lhs: object, rhs: object, out: object, masked_m: object, expected_m: object
) -> tuple[torch.Tensor, ...]:
    """Validate `m_grouped_gemm_fp8_fp8_bf16_nt_masked` arguments; returns ``(a, sa, b, sb)``.

    a ``[g, max_m, k]`` e4m3, sa ``[g, max_m, ceil(k/128)]`` f32, b ``[g, n, k]`` e4m3,
    sb ``[g, ceil(n/128), ceil(k/128)]`` f32, out ``[g, max_m, n]`` bf16, masked_m int32 ``[g]``,
    expected_m a positive Python int.
    """
    a, sa, b, sb = _unpack(lhs, rhs)
    _check_dtypes_and_ranks(a, sa, b, sb, out, 3, 3)
    check_tensor(masked_m, "masked_m", torch.int32, 1)
    expected_m = check_host_int(expected_m, "expected_m")
    if expected_m <= 0:
        raise ValueError(f"expected_m: expected a positive int, got {expected_m}")
    check_devices(a=a, sa=sa, b=b, sb=sb, out=out, masked_m=masked_m)
    if b.shape[0] != a.shape[0]:
        raise ValueError(f"b: expected {a.shape[0]} groups (the first dim of a), got shape {list(b.shape)}")
    if b.shape[0] == 0:
        raise ValueError(f"b: expected at least one group, got shape {list(b.shape)}")
    _check_operands(a, sa, b, sb, out)
    _check_shape(masked_m, "masked_m", (a.shape[0],), "one valid-row count per group")
    _check_contiguous(masked_m, "masked_m")
    return a, sa, b, sb


def check_host_int(value: object, name: str) -> int:
    """A host integer, through `operator.index` (int, numpy integers); bools and tensors are refused
    (reading a CUDA tensor would synchronize with the GPU)."""
    if isinstance(value, (bool, torch.Tensor)):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}"
                        + (" (pass int(x) yourself: reading a tensor may synchronize)"
                           if isinstance(value, torch.Tensor) else ""))
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}") from None


# ------------------------------------------------------------------------- contiguous layout values
def contiguous_layout_problem(m_indices: torch.Tensor, num_groups: int, alignment: int = BLOCK,
                              require_aligned: bool = True) -> str | None:
    """What is wrong with the values of ``m_indices`` (an error message), or None.

    Out of range: any value outside ``[-1, num_groups)``. Aligned (the fast path's contract, checked
    only with ``require_aligned``): in every ``alignment``-row block of rows, the rows that carry a
    group id all carry the id of the block's first row, and rows marked -1 come only after them (a
    block that starts with -1 holds -1 only). Groups laid out one after another, each starting at a
    multiple of ``alignment`` and padded with -1 up to the next, satisfy this.

    Reads ``m_indices`` on the host: for a CUDA tensor that synchronizes with the GPU.
    """
    idx = m_indices.detach().to("cpu", torch.int64)
    bad = (idx < -1) | (idx >= num_groups)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        return (f"m_indices: expected values in [-1, {num_groups}) (a group of b, or -1 for a padding row), "
                f"got {int(idx[row])} at row {row}")
    if not require_aligned or idx.numel() == 0:
        return None
    pad_rows = -idx.numel() % alignment
    blocks = torch.cat([idx, idx.new_full((pad_rows,), -1)]).view(-1, alignment)
    is_pad = blocks == -1
    wrong_group = ~is_pad & (blocks != blocks[:, :1])
    after_pad = is_pad.to(torch.int8).cummax(dim=1).values.bool() & ~is_pad
    bad = (wrong_group | after_pad).flatten()
    if not bool(bad.any()):
        return None
    row = int(bad.nonzero()[0, 0])
    start = row - row % alignment
    group, first = int(idx[row]), int(idx[start])
    if first == -1 or bool(after_pad.flatten()[row]):
        what = f"row {row} (group {group}) comes after a padding row (-1) in its block"
    else:
        what = f"row {row} belongs to group {group}, but its block starts with group {first}"
    return (f"m_indices: {what} (rows {start}-{start + alignment - 1}); the aligned layout needs each "
            f"group's rows to start at a multiple of {alignment} (get_m_alignment_for_contiguous_layout()), "
            "with -1 padding only after them. Pass groups_aligned=False to compute any layout (slower: the "
            "rows are regrouped on the GPU first)")


def check_contiguous_layout(
    m_indices: torch.Tensor, num_groups: int, *, require_aligned: bool = True
) -> None:
    """Check the values of a contiguous layout's ``m_indices``; raise ``ValueError`` saying what is wrong.

    Args:
        m_indices: int32 ``[M]``, the group of each row or -1, on any device.
        num_groups: the number of groups (``b.shape[0]``).
        require_aligned: also require the aligned layout that the GPU's fast path needs (see
            `contiguous_layout_problem`); without it, only the range ``[-1, num_groups)`` is checked.

    Reads ``m_indices`` on the host: for a CUDA tensor this synchronizes with the GPU, so use it in
    tests and debugging (or set ``FP8GEMM_CHECK_INPUTS=1``), not on a serving path.
    """
    check_tensor(m_indices, "m_indices", torch.int32, 1)
    num_groups = check_host_int(num_groups, "num_groups")
    problem = contiguous_layout_problem(m_indices, num_groups, require_aligned=require_aligned)
    if problem is not None:
        raise ValueError(problem)


# ------------------------------------------------------------------------------------ training GEMMs
# The FP32-output GEMMs with 1x128 scales on both operands (recipe (1, 1, 128)): the dense one
# (`fp8_gemm_nt` with an FP32 ``d``) and the k-grouped contiguous one. The same rules as above for
# the FP8 operands; both scale tensors are per row and per 128-wide K block, row-major or TMA-aligned
# column-major (the layout the kernels will read); ``d`` and ``c`` are FP32 with 16-byte rows.


def _check_scale_layout(x: torch.Tensor, name: str) -> None:
    if not (x.is_contiguous() or is_col_major_tma_aligned(x)):
        raise ValueError(
            f"{name}: expected a row-major contiguous or TMA-aligned column-major tensor "
            f"(see get_col_major_tma_aligned_tensor), got shape {list(x.shape)} with strides {x.stride()}"
        )


def _check_accumulator(c: object, d: torch.Tensor, dim: int) -> torch.Tensor | None:
    """``c``: None, ``d`` itself, or an FP32 tensor of d's shape that does not overlap d."""
    if c is None:
        return None
    c = check_tensor(c, "c", torch.float32, dim)
    if c is d:
        return c
    if c.device != d.device:
        raise ValueError(f"c: expected device {d.device} (the device of d), got {c.device}")
    _check_shape(c, "c", tuple(d.shape), "the shape of d")
    _check_contiguous(c, "c")
    if not (_has_no_address(c) or _has_no_address(d)) and c.numel():
        c0, d0 = c.data_ptr(), d.data_ptr()
        size = c.numel() * c.element_size()
        if c0 != d0 and c0 < d0 + size and d0 < c0 + size:
            raise ValueError(
                "c: expected d itself (in place) or a tensor that does not overlap d, got a tensor whose "
                f"memory overlaps d's at an offset of {(c0 - d0) // c.element_size()} elements"
            )
    return c


def _check_fp32_out(d: torch.Tensor, name: str = "d") -> None:
    _check_k_major(d, name, "row-major")
    _check_pointer(d, name)


def check_dense_fp32(a_pair: object, b_pair: object, d: object, c: object = None,
                     names: tuple[str, str, str] = ("a", "b", "d")) -> tuple[torch.Tensor, ...]:
    """Validate the FP32-output dense GEMM (`fp8_gemm_nt` with an FP32 ``d``); returns ``(a, sa, b, sb)``.

    a ``[m, k]`` e4m3, sa ``[m, ceil(k/128)]`` f32, b ``[n, k]`` e4m3, sb ``[n, ceil(k/128)]`` f32 (1x128,
    like sa), d ``[m, n]`` f32 (n % 4 == 0), c None, d itself or f32 ``[m, n]`` not overlapping d.
    ``names``: what the pairs and d are called in messages (the older name calls them lhs, rhs, out).
    """
    a_name, b_name, d_name = names
    a, sa = check_pair(a_pair, a_name)
    b, sb = check_pair(b_pair, b_name)
    check_tensor(a, "a", torch.float8_e4m3fn, 2)
    check_tensor(sa, "sa", torch.float32, 2)
    check_tensor(b, "b", torch.float8_e4m3fn, 2)
    check_tensor(sb, "sb", torch.float32, 2)
    check_tensor(d, d_name, torch.float32, 2)
    check_devices(a=a, sa=sa, b=b, sb=sb, **{d_name: d})
    m, k = a.shape
    n = b.shape[0]
    if b.shape[1] != k:
        raise ValueError(f"b: expected K = {k} (the last dim of a), got shape {list(b.shape)}")
    if k == 0 or n == 0:
        raise ValueError(f"b: expected n > 0 and k > 0, got shape {list(b.shape)}")
    kb = ceil_div(k, BLOCK)
    _check_shape(sa, "sa", (m, kb), "rows of a, ceil(k/128)")
    _check_shape(sb, "sb", (n, kb), "rows of b, ceil(k/128): 1x128 scales, like sa")
    _check_shape(d, d_name, (m, n), "rows of a, rows of b")
    _check_k_major(a, "a")
    _check_k_major(b, "b")
    _check_scale_layout(sa, "sa")
    _check_scale_layout(sb, "sb")
    _check_fp32_out(d, d_name)
    _check_pointer(a, "a")
    _check_pointer(b, "b")
    _check_accumulator(c, d, 2)
    return a, sa, b, sb


def _check_host_counts(ks: object, groups: int) -> list[int] | None:
    if ks is None:
        return None
    if isinstance(ks, torch.Tensor) or not isinstance(ks, Sequence) or isinstance(ks, (str, bytes)):
        raise TypeError(
            f"ks: expected None or a list of {groups} host ints (the device copy goes in ks_tensor), "
            f"got {type(ks).__name__}"
        )
    if len(ks) != groups:
        raise ValueError(f"ks: expected {groups} counts (one per group of d), got {len(ks)}")
    counts = [check_host_int(v, f"ks[{i}]") for i, v in enumerate(ks)]
    for i, v in enumerate(counts):
        if v < 0:
            raise ValueError(f"ks[{i}]: expected a non-negative token count, got {v}")
    return counts


def check_k_grouped(
    a_pair: object, b_pair: object, d: object, ks: object, ks_tensor: object, c: object = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[int] | None]:
    """Validate `k_grouped_fp8_gemm_nt_contiguous`; returns ``(a, sa, b, sb, ks as a list or None)``.

    a ``[m, K]`` e4m3, sa ``[m, K/128]`` f32, b ``[n, K]`` e4m3, sb ``[n, K/128]`` f32, K % 128 == 0,
    d ``[g, m, n]`` f32 (n % 4 == 0), ks_tensor int32 ``[g]``, ks None or g host ints >= 0 whose padded
    sum fits in K, c None, d itself or f32 ``[g, m, n]`` not overlapping d. The values of ks_tensor are
    not read here (`check_k_grouped_values` does that).
    """
    a, sa = check_pair(a_pair, "a")
    b, sb = check_pair(b_pair, "b")
    check_tensor(a, "a", torch.float8_e4m3fn, 2)
    check_tensor(sa, "sa", torch.float32, 2)
    check_tensor(b, "b", torch.float8_e4m3fn, 2)
    check_tensor(sb, "sb", torch.float32, 2)
    check_tensor(d, "d", torch.float32, 3)
    check_tensor(ks_tensor, "ks_tensor", torch.int32, 1)
    check_devices(a=a, sa=sa, b=b, sb=sb, d=d, ks_tensor=ks_tensor)
    m, big_k = a.shape
    n = b.shape[0]
    if b.shape[1] != big_k:
        raise ValueError(f"b: expected K = {big_k} (the last dim of a), got shape {list(b.shape)}")
    if big_k % BLOCK:
        raise ValueError(
            f"a: expected K (the token dim, every group padded to a multiple of {BLOCK}) to be a multiple "
            f"of {BLOCK}, got shape {list(a.shape)}"
        )
    if m == 0 or n == 0:
        raise ValueError(f"d: expected m > 0 and n > 0, got a {list(a.shape)} and b {list(b.shape)}")
    groups = d.shape[0]
    if groups == 0:
        raise ValueError(f"d: expected at least one group, got shape {list(d.shape)}")
    kb = big_k // BLOCK
    _check_shape(sa, "sa", (m, kb), "rows of a, K/128")
    _check_shape(sb, "sb", (n, kb), "rows of b, K/128: 1x128 scales, like sa")
    _check_shape(d, "d", (groups, m, n), "groups, rows of a, rows of b")
    _check_shape(ks_tensor, "ks_tensor", (groups,), "one token count per group of d")
    _check_contiguous(ks_tensor, "ks_tensor")
    _check_k_major(a, "a")
    _check_k_major(b, "b")
    _check_scale_layout(sa, "sa")
    _check_scale_layout(sb, "sb")
    _check_fp32_out(d)
    _check_pointer(a, "a")
    _check_pointer(b, "b")
    _check_accumulator(c, d, 3)
    counts = _check_host_counts(ks, groups)
    if counts is not None:
        _check_k_grouped_fit(counts, big_k, "ks")
    return a, sa, b, sb, counts


def _check_k_grouped_fit(counts: list[int], big_k: int, name: str) -> None:
    used = sum(ceil_div(v, BLOCK) * BLOCK for v in counts)
    if used > big_k:
        raise ValueError(
            f"{name}: expected the groups, each padded to a multiple of {BLOCK} tokens, to fit in K = "
            f"{big_k}, got {used} columns for counts {counts}"
        )


def _nonzero_fp8(x: torch.Tensor) -> torch.Tensor:
    # +0 and -0 are both zero; comparisons on float8 are not implemented on every device.
    return (x.view(torch.uint8) & 0x7F) != 0


def check_k_grouped_values(
    a: torch.Tensor, b: torch.Tensor, ks_tensor: torch.Tensor, ks: list[int] | None = None
) -> list[int]:
    """Check the values of a k-grouped layout; returns the counts of ``ks_tensor`` as a list.

    ``ks_tensor`` must hold non-negative counts whose groups, each padded to a multiple of 128, fit in
    K; equal to ``ks`` when that is given; and the padding columns of each group's last block (from
    ``k0 + ks[g]`` to the next multiple of 128) must be zero in ``a`` and ``b``: the kernels read whole
    128-wide blocks. Reads ``ks_tensor``, ``a`` and ``b`` on the host (for CUDA tensors: synchronizes).
    """
    from .reference import k_grouped_offsets

    counts = [int(v) for v in ks_tensor.tolist()]
    for i, v in enumerate(counts):
        if v < 0:
            raise ValueError(f"ks_tensor: expected non-negative token counts, got {v} for group {i}")
    if ks is not None and ks != counts:
        raise ValueError(f"ks: expected the values of ks_tensor ({counts}), got {ks}")
    _check_k_grouped_fit(counts, a.shape[1], "ks_tensor")
    offsets = k_grouped_offsets(counts)
    for g, count in enumerate(counts):
        start, end = offsets[g] + count, offsets[g + 1]
        if start == end:
            continue
        for x, name in ((a, "a"), (b, "b")):
            bad = _nonzero_fp8(x[:, start:end])
            if bool(bad.any()):
                row, col = (int(v) for v in bad.nonzero()[0])
                raise ValueError(
                    f"{name}: expected zeros in the padding of group {g} (columns {start}-{end - 1}, "
                    f"after its {count} tokens), got a non-zero value at [{row}, {start + col}]; "
                    "k_grouped_per_channel_transpose_cast_to_fp8 writes the layout with zero padding"
                )
    return counts
