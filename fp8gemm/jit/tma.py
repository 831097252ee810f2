"""TMA tensor maps (CUtensorMap) for torch tensors.

Every hardware rule that the driver would answer with a bare CUDA_ERROR_INVALID_VALUE is checked
here first with a ValueError that says which rule and which value. Dims, strides and boxes are
given innermost first, in elements, as the driver takes them.
"""

from __future__ import annotations

import ctypes

import torch

from .driver import driver, ensure_context
from .errors import check

_MAP_BYTES = 128
_SPAN = {0: None, 32: 32, 64: 64, 128: 128}  # swizzle bytes -> widest inner box row, in bytes


def _dtype_table() -> dict[torch.dtype, str]:
    table = {
        torch.uint8: "CU_TENSOR_MAP_DATA_TYPE_UINT8",
        torch.bfloat16: "CU_TENSOR_MAP_DATA_TYPE_BFLOAT16",
        torch.float16: "CU_TENSOR_MAP_DATA_TYPE_FLOAT16",
        torch.float32: "CU_TENSOR_MAP_DATA_TYPE_FLOAT32",
        torch.int32: "CU_TENSOR_MAP_DATA_TYPE_INT32",
    }
    # The driver has no FP8 type; the copy is byte-exact, so FP8 travels as UINT8.
    for name in ("float8_e4m3fn", "float8_e5m2"):
        if hasattr(torch, name):
            table[getattr(torch, name)] = "CU_TENSOR_MAP_DATA_TYPE_UINT8"
    return table


_DTYPES = _dtype_table()


class TensorMap:
    """An encoded tensor map: 128 bytes kept at a 128-byte aligned host address, which is what a
    launch passes for a `const __grid_constant__` map parameter. Holds the tensor alive."""

    __slots__ = ("_buffer", "address", "tensor", "dims", "strides_bytes", "box", "swizzle_bytes", "dtype")

    def __init__(self, raw: bytes, *, tensor: torch.Tensor, dims: tuple[int, ...],
                 strides_bytes: tuple[int, ...], box: tuple[int, ...], swizzle_bytes: int):
        if len(raw) != _MAP_BYTES:
            raise ValueError(f"a tensor map is {_MAP_BYTES} bytes, got {len(raw)}")
        self._buffer = ctypes.create_string_buffer(2 * _MAP_BYTES)
        self.address = (ctypes.addressof(self._buffer) + _MAP_BYTES - 1) & ~(_MAP_BYTES - 1)
        ctypes.memmove(self.address, raw, _MAP_BYTES)
        self.tensor = tensor
        self.dtype = tensor.dtype
        self.dims = dims
        self.strides_bytes = strides_bytes
        self.box = box
        self.swizzle_bytes = swizzle_bytes

    @property
    def data(self) -> bytes:
        """The 128 encoded bytes."""
        return ctypes.string_at(self.address, _MAP_BYTES)

    def __repr__(self) -> str:
        return (f"TensorMap(dtype={self.dtype}, dims={self.dims}, strides_bytes={self.strides_bytes}, "
                f"box={self.box}, swizzle_bytes={self.swizzle_bytes})")


def _as_tuple(name: str, value, rank: int | None = None) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}") from None
    if rank is not None and len(out) != rank:
        raise ValueError(f"{name} must have {rank} entries (innermost first), got {out}")
    return out


def check_tensor_map_args(
    tensor: torch.Tensor,
    box: tuple[int, ...],
    *,
    swizzle_bytes: int = 0,
    dims: tuple[int, ...] | None = None,
    strides: tuple[int, ...] | None = None,
) -> tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Check the TMA rules; return (driver dtype name, dims, strides in bytes, box), innermost first.

    Runs on any device, so the rules can be tested without a GPU.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in _DTYPES:
        raise ValueError(f"tensor dtype {tensor.dtype} has no TMA element type (supported: "
                         f"{', '.join(str(d) for d in _DTYPES)})")
    elem = tensor.element_size()

    if dims is None:
        if strides is not None:
            raise ValueError("strides given without dims: give both or neither")
        if tensor.dim() == 0 or tensor.stride(-1) != 1:
            raise ValueError(f"tensor's innermost dimension must be contiguous (stride 1), got strides "
                             f"{tuple(tensor.stride())}; pass dims= and strides= for other layouts")
        dims = tuple(reversed(tensor.shape))
        strides = tuple(reversed(tensor.stride()))[1:]
    else:
        dims = _as_tuple("dims", dims)
        if strides is None:  # packed in the order given
            acc, out = 1, []
            for d in dims[:-1]:
                acc *= d
                out.append(acc)
            strides = tuple(out)
    rank = len(dims)
    if not 1 <= rank <= 5:
        raise ValueError(f"TMA supports rank 1..5, got rank {rank} (dims {dims})")
    strides = _as_tuple("strides", strides, rank - 1)
    box = _as_tuple("box", box, rank)

    for i, d in enumerate(dims):
        if not 1 <= d <= 2**32:
            raise ValueError(f"dims[{i}] = {d} is outside 1..2^32")
    strides_bytes = tuple(s * elem for s in strides)
    for i, s in enumerate(strides_bytes):
        if s % 16 or s <= 0:
            raise ValueError(f"stride {i + 1} is {s} bytes ({strides[i]} elements of {elem} B): TMA needs "
                             "a positive multiple of 16 bytes (pad the row, e.g. get_tma_aligned_size)")
        if s >= 2**40:
            raise ValueError(f"stride {i + 1} is {s} bytes: TMA needs < 2^40")
    for i, b in enumerate(box):
        if not 1 <= b <= 256:
            raise ValueError(f"box[{i}] = {b} is outside 1..256")
    inner_bytes = box[0] * elem
    if inner_bytes % 16:
        raise ValueError(f"inner box is {inner_bytes} bytes ({box[0]} x {elem} B): must be a multiple of 16")
    if swizzle_bytes not in _SPAN:
        raise ValueError(f"swizzle_bytes must be one of 0, 32, 64, 128, got {swizzle_bytes}")
    span = _SPAN[swizzle_bytes]
    if span is not None and inner_bytes > span:
        raise ValueError(f"inner box is {inner_bytes} bytes, more than the {swizzle_bytes}B swizzle span "
                         f"allows (at most {span // elem} elements of {tensor.dtype})")

    ptr = tensor.data_ptr()
    if ptr % 16:
        raise ValueError(f"tensor base address {ptr:#x} is not 16-byte aligned (storage offset "
                         f"{tensor.storage_offset()} elements)")
    # The map must not reach past the tensor's storage: explicit dims/strides make this possible.
    last = elem * dims[0] + sum((d - 1) * s for d, s in zip(dims[1:], strides_bytes, strict=True))
    available = tensor.untyped_storage().nbytes() - tensor.storage_offset() * elem
    if last > available:
        raise ValueError(f"dims {dims} with strides {strides_bytes} B reach {last} bytes past the base, "
                         f"but the tensor's storage has only {available}")
    return _DTYPES[tensor.dtype], dims, strides_bytes, box


def make_tensor_map(
    tensor: torch.Tensor,
    box: tuple[int, ...],
    *,
    swizzle_bytes: int = 0,
    dims: tuple[int, ...] | None = None,
    strides: tuple[int, ...] | None = None,
    oob_nan: bool = False,
) -> TensorMap:
    """Encode a tiled tensor map for `tensor` (cuTensorMapEncodeTiled).

    box, dims and strides are innermost first and in elements; dims/strides default to the
    tensor's own shape and strides (which must then be contiguous innermost). Out-of-bounds
    elements read as zero (or NaN with oob_nan); L2 promotion is 256 B; element strides are 1.
    """
    dtype_name, dims, strides_bytes, box = check_tensor_map_args(
        tensor, box, swizzle_bytes=swizzle_bytes, dims=dims, strides=strides)
    if not tensor.is_cuda:
        raise ValueError(f"tensor must be on a CUDA device, got {tensor.device}")
    cu = driver()
    ensure_context(tensor.device.index)
    swizzle = {
        0: cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_NONE,
        32: cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_32B,
        64: cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_64B,
        128: cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
    }[swizzle_bytes]
    fill = cu.CUtensorMapFloatOOBfill
    oob = fill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA if oob_nan else \
        fill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE
    err, tmap = cu.cuTensorMapEncodeTiled(
        getattr(cu.CUtensorMapDataType, dtype_name),
        len(dims),
        tensor.data_ptr(),
        [cu.cuuint64_t(d) for d in dims],
        [cu.cuuint64_t(s) for s in strides_bytes],
        [cu.cuuint32_t(b) for b in box],
        [cu.cuuint32_t(1)] * len(dims),
        cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        swizzle,
        cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        oob,
    )
    check(err, f"cuTensorMapEncodeTiled({dtype_name}, dims={dims}, strides={strides_bytes}, box={box}, "
               f"swizzle={swizzle_bytes})")
    raw = ctypes.string_at(tmap.getPtr(), _MAP_BYTES)
    return TensorMap(raw, tensor=tensor, dims=dims, strides_bytes=strides_bytes, box=box,
                     swizzle_bytes=swizzle_bytes)
