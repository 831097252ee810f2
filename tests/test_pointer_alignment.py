"""A tensor that starts at an address TMA cannot use is refused by validation, naming the argument
(also on a repeat call whose shapes passed before: tests/test_prepared_calls.py)."""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import validate

M, N, K = 16, 128, 256
E4M3 = torch.float8_e4m3fn


def _at_offset(shape: tuple[int, ...], dtype: torch.dtype, offset_elements: int) -> torch.Tensor:
    """A contiguous tensor of `shape` whose data starts `offset_elements` into a fresh buffer."""
    numel = 1
    for d in shape:
        numel *= d
    buf = torch.zeros(numel + offset_elements, dtype=dtype)
    return buf[offset_elements:].view(shape)


def _args():
    return dict(a=torch.zeros(M, K, dtype=E4M3), sa=torch.ones(M, K // 128), b=torch.zeros(N, K, dtype=E4M3),
                sb=torch.ones(1, K // 128), out=torch.zeros(M, N, dtype=torch.bfloat16))


@pytest.mark.parametrize("name,shape,dtype,offset", [
    ("a", (M, K), E4M3, 3),
    ("b", (N, K), E4M3, 8),
    ("out", (M, N), torch.bfloat16, 1),
])
def test_misaligned_pointer_names_the_argument(name, shape, dtype, offset) -> None:
    args = _args()
    args[name] = _at_offset(shape, dtype, offset)
    assert args[name].is_contiguous() and args[name].data_ptr() % 16
    expected = rf"^{name}: expected a data pointer aligned to 16 bytes.*storage offset {offset}"
    with pytest.raises(ValueError, match=expected):
        fp8gemm.gemm_fp8_fp8_bf16_nt((args["a"], args["sa"]), (args["b"], args["sb"]), args["out"])


def test_misaligned_tma_layout_sa_is_refused_but_a_row_major_one_is_copied() -> None:
    args = _args()
    storage = torch.zeros(K // 128 * M + 1)[1:].view(K // 128, M)  # column-major, 4 bytes off
    sa = storage.t()
    assert validate.is_col_major_tma_aligned(sa)
    with pytest.raises(ValueError, match="^sa: expected a data pointer aligned"):
        validate.check_dense((args["a"], sa), (args["b"], args["sb"]), args["out"])
    row_major = _at_offset((M, K // 128), torch.float32, 1)  # converted before any TMA sees it
    validate.check_dense((args["a"], row_major), (args["b"], args["sb"]), args["out"])
