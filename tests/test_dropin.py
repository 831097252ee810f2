"""The newer names take the field's keyword arguments: supported values work, the rest raise
`NotImplementedError` naming the argument. And host integers come through `operator.index`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fp8gemm
from fp8gemm import reference

M, N, K, G = 40, 128, 256, 3


def _dense(m: int = M):
    gen = torch.Generator().manual_seed(0)
    a, sa = fp8gemm.per_token_cast_to_fp8(torch.randn(m, K, generator=gen))
    b, sb = fp8gemm.per_block_cast_to_fp8(torch.randn(N, K, generator=gen))
    return (a, sa), (b, sb)


def _grouped_b():
    gen = torch.Generator().manual_seed(1)
    return fp8gemm.per_block_cast_to_fp8(torch.randn(G, N, K, generator=gen))


def test_fp8_gemm_nt_by_keyword_with_every_supported_argument() -> None:
    lhs, rhs = _dense()
    want = reference.gemm_nt(*lhs, *rhs)
    d = torch.empty(M, N, dtype=torch.bfloat16)
    fp8gemm.fp8_gemm_nt(a=lhs, b=rhs, d=d, c=None, recipe=(1, 128, 128), compiled_dims="nk",
                        disable_ue8m0_cast=True)
    assert torch.equal(d, want)
    d.zero_()
    fp8gemm.fp8_gemm_nt(lhs, rhs, d, None, [1, 128, 128], "mn", False)  # positional, list recipe
    assert torch.equal(d, want)


def test_contiguous_by_keyword_grouped_layout_or_m_indices() -> None:
    (a, sa), _ = _dense(256)
    b, sb = _grouped_b()
    layout = torch.tensor([0] * 100 + [-1] * 28 + [2] * 128, dtype=torch.int32)
    want = torch.zeros(256, N, dtype=torch.bfloat16)
    reference.m_grouped_contiguous_reference(a, sa, b, sb, want, layout)
    for kwargs in ({"grouped_layout": layout}, {"m_indices": layout}):
        d = torch.zeros(256, N, dtype=torch.bfloat16)
        fp8gemm.m_grouped_fp8_gemm_nt_contiguous(a=(a, sa), b=(b, sb), d=d, recipe=None, compiled_dims="nk",
                                                 disable_ue8m0_cast=False, **kwargs)
        assert torch.equal(d, want)
    with pytest.raises(TypeError, match="grouped_layout: expected exactly one.*got both"):
        fp8gemm.m_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, layout, m_indices=layout)
    with pytest.raises(TypeError, match="got neither"):
        fp8gemm.m_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d)


def test_masked_by_keyword() -> None:
    gen = torch.Generator().manual_seed(2)
    a, sa = fp8gemm.per_token_cast_to_fp8(torch.randn(G, 16, K, generator=gen))
    b, sb = _grouped_b()
    masked_m = torch.tensor([16, 0, 5], dtype=torch.int32)
    want = torch.zeros(G, 16, N, dtype=torch.bfloat16)
    reference.m_grouped_masked_reference(a, sa, b, sb, want, masked_m)
    d = torch.zeros(G, 16, N, dtype=torch.bfloat16)
    fp8gemm.m_grouped_fp8_gemm_nt_masked(a=(a, sa), b=(b, sb), d=d, masked_m=masked_m, expected_m=np.int64(8),
                                         recipe=(1, 128, 128), compiled_dims="nk", disable_ue8m0_cast=True)
    assert torch.equal(d, want)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"c": torch.zeros(M, N)}, NotImplementedError, r"^c: an FP32 accumulator"),
    ({"recipe": (1, 1, 128)}, NotImplementedError, r"^recipe: only \(1, 128, 128\)"),
    ({"recipe": "1x128"}, NotImplementedError, r"^recipe: "),
    ({"compiled_dims": 2}, TypeError, r"^compiled_dims: expected a str, got int"),
    ({"disable_ue8m0_cast": 1}, TypeError, r"^disable_ue8m0_cast: expected a bool, got int"),
])
def test_unsupported_keyword_values_name_the_argument(kwargs, error, message) -> None:
    lhs, rhs = _dense()
    d = torch.zeros(M, N, dtype=torch.bfloat16)
    with pytest.raises(error, match=message):
        fp8gemm.fp8_gemm_nt(lhs, rhs, d, **kwargs)
    assert (d == 0).all()


@pytest.mark.parametrize("which", ["a", "b"])
def test_ue8m0_scales_are_not_implemented(which: str) -> None:
    lhs, rhs = _dense()
    packed = torch.zeros(1, dtype=torch.int32)
    args = {"a": (lhs[0], packed), "b": rhs} if which == "a" else {"a": lhs, "b": (rhs[0], packed)}
    with pytest.raises(NotImplementedError, match=rf"^{which}\[1\]: int32 scales \(packed UE8M0"):
        fp8gemm.fp8_gemm_nt(d=torch.zeros(M, N, dtype=torch.bfloat16), **args)


def test_grouped_newer_names_check_their_keywords_too() -> None:
    (a, sa), _ = _dense(128)
    b, sb = _grouped_b()
    d = torch.zeros(128, N, dtype=torch.bfloat16)
    with pytest.raises(NotImplementedError, match="^recipe"):
        fp8gemm.m_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, torch.zeros(128, dtype=torch.int32),
                                                 recipe=(1, 128, 1))
    with pytest.raises(NotImplementedError, match="^recipe"):
        fp8gemm.m_grouped_fp8_gemm_nt_masked((a.view(1, 128, K), sa.view(1, 128, -1)), (b, sb),
                                             d.view(1, 128, N), torch.zeros(1, dtype=torch.int32), 1,
                                             recipe=(2, 128, 128))


@pytest.mark.parametrize("value", [np.int32(4), np.int64(4), np.uint8(4)])
def test_numpy_integers_are_accepted(value, monkeypatch: pytest.MonkeyPatch) -> None:
    from fp8gemm import device

    monkeypatch.setattr(device, "_num_sms_override", None)
    fp8gemm.set_num_sms(value)
    assert fp8gemm.get_num_sms() == 4 and type(fp8gemm.get_num_sms()) is int
    gen = torch.Generator().manual_seed(3)
    a, sa = fp8gemm.per_token_cast_to_fp8(torch.randn(G, 8, K, generator=gen))
    b, sb = _grouped_b()
    out = torch.zeros(G, 8, N, dtype=torch.bfloat16)
    masked_m = torch.full((G,), 8, dtype=torch.int32)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m, value)
    assert out.abs().sum() > 0


@pytest.mark.parametrize("value,error", [(4.0, TypeError), (np.float32(4), TypeError), (True, TypeError),
                                         (torch.tensor(4), TypeError), (np.int64(0), ValueError)])
def test_non_integers_are_refused(value, error) -> None:
    with pytest.raises(error, match="num_sms"):
        fp8gemm.set_num_sms(value)
