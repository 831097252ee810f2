"""The GEMMs' one hot-path cache (`fp8gemm.gemm._prepared`), on the CPU with CUDA faked: tensors report
``is_cuda``, the launch layer is a recorder that prepares a callable. A repeat call on the same
buffers runs the prepared launch without checking again; anything the checks or the launch depend on
(an address, a shape, strides, a dtype, a host argument, the SM count, the config selector) makes a
new entry, after the full checks, so bad input is still refused; CPU calls are never kept."""

from __future__ import annotations

import contextlib

import pytest
import torch

import fp8gemm
from fp8gemm import device, env, gemm, validate
from fp8gemm.layout import get_col_major_tma_aligned_tensor

E4M3 = torch.float8_e4m3fn
M, N, K, G = 8, 128, 256, 2


class Recorder:
    """The launch layer: each prepare is logged, and returns a callable whose runs are logged."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.select_config = object()  # what the key reads as the config selector

    def _prepare(self, name: str, *args: object):
        self.log.append(("prepare", name, args))

        def prepared() -> None:
            self.log.append(("run", name))

        prepared()  # launch.gemm_* launch once, then return the prepared launch
        return prepared

    def gemm_dense(self, *args):
        return self._prepare("dense", *args)

    def gemm_contiguous(self, *args):
        return self._prepare("contiguous", *args)

    def gemm_masked(self, *args):
        return self._prepare("masked", *args)

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.log]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    recorder = Recorder()
    monkeypatch.setattr(gemm, "_launch_module", recorder)
    monkeypatch.setattr(gemm, "_current_device", lambda: 0)
    monkeypatch.setattr(device, "_capability", lambda index: (9, 0))
    monkeypatch.setattr(device, "_num_sms_override", None)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: 0, raising=False)
    monkeypatch.delenv("FP8GEMM_CHECK_INPUTS", raising=False)
    env.refresh()
    gemm.clear_prepared()
    yield recorder
    gemm.clear_prepared()
    env.refresh()


def _tma(sa: torch.Tensor) -> torch.Tensor:
    return get_col_major_tma_aligned_tensor(sa)


def _dense(m: int = M):
    return ((torch.zeros(m, K, dtype=E4M3), _tma(torch.ones(m, K // 128))),
            (torch.zeros(N, K, dtype=E4M3), torch.ones(1, K // 128)),
            torch.zeros(m, N, dtype=torch.bfloat16))


def _count_checks(monkeypatch: pytest.MonkeyPatch, name: str) -> list:
    calls = []
    real = getattr(validate, name)

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(validate, name, counted)
    return calls


def test_repeat_call_runs_the_prepared_launch_unchecked(fake: Recorder,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _count_checks(monkeypatch, "check_dense")
    lhs, rhs, out = _dense()
    for _ in range(3):
        gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert fake.kinds() == ["prepare", "run", "run", "run"]
    assert len(checks) == 1 and len(gemm._prepared) == 1
    assert gemm._dense_key(lhs, rhs, out) in gemm._prepared


def test_anything_the_call_depends_on_makes_a_new_entry(fake: Recorder,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lhs, rhs, out = _dense()
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, torch.zeros_like(out))  # another address
    gemm.gemm_fp8_fp8_bf16_nt((lhs[0][:4], _tma(torch.ones(4, K // 128))), rhs, out[:4])  # fewer rows
    monkeypatch.setattr(device, "_num_sms_override", 66)  # what set_num_sms(66) leaves
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    fake.select_config = object()  # a tool forcing configs swaps launch.select_config
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert fake.kinds() == ["prepare", "run"] * 5


def test_bad_input_at_a_known_address_is_still_refused(fake: Recorder) -> None:
    lhs, rhs, out = _dense()
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    (a, sa), (b, sb) = lhs, rhs
    with pytest.raises(TypeError, match="^b: expected dtype torch.float8_e4m3fn"):
        gemm.gemm_fp8_fp8_bf16_nt(lhs, (b.view(torch.uint8), sb), out)  # same address, shape, strides
    with pytest.raises(ValueError, match="^out: expected a contiguous"):
        gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out.t().contiguous().t())  # same shape, other strides
    with pytest.raises(ValueError, match="^sa: expected shape"):
        gemm.gemm_fp8_fp8_bf16_nt((a, sa[:, :1]), rhs, out)
    with pytest.raises(TypeError, match="^lhs: expected a pair"):
        gemm.gemm_fp8_fp8_bf16_nt((a,), rhs, out)
    misaligned = torch.zeros(M * N + 1, dtype=torch.bfloat16)[1:].view(M, N)
    with pytest.raises(ValueError, match="^out: expected a data pointer aligned"):
        gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, misaligned)
    assert fake.kinds() == ["prepare", "run"]


def test_row_major_sa_is_converted_on_every_call(fake: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _count_checks(monkeypatch, "check_dense")
    lhs, rhs, out = _dense()
    row_major = (lhs[0], lhs[1].contiguous())
    gemm.gemm_fp8_fp8_bf16_nt(row_major, rhs, out)
    gemm.gemm_fp8_fp8_bf16_nt(row_major, rhs, out)
    assert len(checks) == 2  # never kept under the row-major signature: the copy is new each time
    converted = fake.log[0][2][1]
    assert converted.stride() == (1, M) and torch.equal(converted, lhs[1])
    # Kept under the converted copy's own signature, never the row-major one's.
    assert gemm._prepared and all(key[5] != row_major[1].data_ptr() for key in gemm._prepared)
    assert all(key[7] == (1, M) for key in gemm._prepared)


def test_first_call_of_a_process_imports_the_launch_layer_before_its_key(
        fake: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any CUDA call the launch layer is not imported (`_launch_module` is None) and the keys
    name its config selector: the hit path gives up quietly, the full path imports it first."""
    def import_launch():
        gemm._launch_module = fake
        return fake

    monkeypatch.setattr(gemm, "_launch_module", None)
    monkeypatch.setattr(gemm, "_launch", import_launch)
    lhs, rhs, out = _dense()
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert fake.kinds() == ["prepare", "run", "run"]
    assert list(gemm._prepared) == [gemm._dense_key(lhs, rhs, out)]
    for name, call in (("contiguous", lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(*_contiguous())),
                       ("masked", lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(*_masked(), 4))):
        monkeypatch.setattr(gemm, "_launch_module", None)
        call()
        assert fake.log[-2][:2] == ("prepare", name)


def test_masked_key_holds_expected_m_and_its_type(fake: Recorder) -> None:
    a = torch.zeros(G, M, K, dtype=E4M3)
    sa = _tma(torch.ones(G, M, K // 128))
    b = torch.zeros(G, N, K, dtype=E4M3)
    sb = torch.ones(G, 1, K // 128)
    out = torch.zeros(G, M, N, dtype=torch.bfloat16)
    masked_m = torch.zeros(G, dtype=torch.int32)
    for expected in (1, 1, 4):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m, expected)
    assert fake.kinds() == ["prepare", "run", "run", "prepare", "run"]
    assert fake.log[0][2][-1] == 1 and fake.log[3][2][-1] == 4
    assert gemm._masked_key((a, sa), (b, sb), out, masked_m, 4) in gemm._prepared
    assert gemm._masked_key((a, sa), (b, sb), out, masked_m, 4)[-4:-2] == (4, int)
    with pytest.raises(TypeError, match="expected_m: expected a positive int, got bool"):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m, True)  # True == 1
    with pytest.raises(TypeError, match="^masked_m: expected dtype torch.int32"):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m.view(torch.float32), 1)


def _contiguous():
    a = torch.zeros(256, K, dtype=E4M3)
    sa = _tma(torch.ones(256, K // 128))
    b = torch.zeros(G, N, K, dtype=E4M3)
    sb = torch.ones(G, 1, K // 128)
    out = torch.zeros(256, N, dtype=torch.bfloat16)
    m_indices = torch.tensor([0] * 128 + [1] * 128, dtype=torch.int32)
    return (a, sa), (b, sb), out, m_indices


def test_contiguous_fast_path_only_for_the_aligned_layout_unchecked(fake: Recorder,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    values = []
    monkeypatch.setattr(validate, "check_contiguous_layout", lambda m, g, require_aligned: values.append(g))
    lhs, rhs, out, m_indices = _contiguous()
    for _ in range(2):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(lhs, rhs, out, m_indices)
    assert fake.kinds() == ["prepare", "run", "run"] and values == []
    assert gemm._contiguous_key(lhs, rhs, out, m_indices) in gemm._prepared
    with pytest.raises(TypeError, match="groups_aligned: expected a bool, got int"):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(lhs, rhs, out, m_indices, groups_aligned=1)
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "1")
    env.refresh()
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(lhs, rhs, out, m_indices)  # a kept call, checked now
    assert values == [G] and fake.kinds()[-1] == "run"


def test_a_call_on_another_device_runs_there(fake: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    switches = []

    @contextlib.contextmanager
    def on_device(index):
        switches.append(index)
        yield

    monkeypatch.setattr(gemm, "_on_device", on_device)
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: 1, raising=False)
    lhs, rhs, out = _dense()
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)  # cuda:0 current, tensors on cuda:1
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert switches == [1, 1] and fake.kinds() == ["prepare", "run", "run"]
    assert next(iter(gemm._prepared.values()))[0] == 1


def test_the_cache_is_bounded(fake: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemm, "_MAX_PREPARED", 2)
    lhs, rhs, _ = _dense()
    outs = [torch.zeros(M, N, dtype=torch.bfloat16) for _ in range(3)]
    for out in outs:
        gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert len(gemm._prepared) == 1  # full at the third: cleared, then the new one kept
    gemm.clear_prepared()
    assert gemm._prepared == {}


def test_cpu_calls_are_never_kept() -> None:
    gemm.clear_prepared()
    lhs, rhs, out = _dense()
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)  # the reference path
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    assert gemm._prepared == {}
    with pytest.raises(ValueError, match="^out: expected shape"):
        gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, torch.empty(M, 8, dtype=torch.bfloat16))


# ------------------------------------------------------------------------------------- newer names
def _masked():
    a = torch.zeros(G, M, K, dtype=E4M3)
    sa = _tma(torch.ones(G, M, K // 128))
    b = torch.zeros(G, N, K, dtype=E4M3)
    sb = torch.ones(G, 1, K // 128)
    out = torch.zeros(G, M, N, dtype=torch.bfloat16)
    return (a, sa), (b, sb), out, torch.zeros(G, dtype=torch.int32)


def test_newer_names_share_the_kept_calls_of_the_established_ones(fake: Recorder,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    checks = [_count_checks(monkeypatch, f"check_{kind}") for kind in ("dense", "contiguous", "masked")]
    lhs, rhs, out = _dense()
    fp8gemm.fp8_gemm_nt(lhs, rhs, out)
    gemm.gemm_fp8_fp8_bf16_nt(lhs, rhs, out)
    fp8gemm.fp8_gemm_nt(lhs, rhs, out, None, None, "mn", True)
    clhs, crhs, cout, m_indices = _contiguous()
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(clhs, crhs, cout, m_indices)
    fp8gemm.m_grouped_fp8_gemm_nt_contiguous(clhs, crhs, cout, m_indices)
    fp8gemm.m_grouped_fp8_gemm_nt_contiguous(clhs, crhs, cout, m_indices=m_indices)
    mlhs, mrhs, mout, masked_m = _masked()
    fp8gemm.m_grouped_fp8_gemm_nt_masked(mlhs, mrhs, mout, masked_m, 4)
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(mlhs, mrhs, mout, masked_m, 4)
    assert fake.kinds() == ["prepare", "run", "run", "run"] * 2 + ["prepare", "run", "run"]
    assert [len(c) for c in checks] == [1, 1, 1] and len(gemm._prepared) == 3
    # One kept call per GEMM, under the key both names build.
    assert {gemm._dense_key(lhs, rhs, out), gemm._contiguous_key(clhs, crhs, cout, m_indices),
            gemm._masked_key(mlhs, mrhs, mout, masked_m, 4)} == set(gemm._prepared)


def test_newer_names_still_check_on_a_kept_call(fake: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kept call, then the same buffers with something else: the full checks answer, never the kept launch.
    (a, sa), rhs, out = _dense()
    (b, sb) = rhs
    fp8gemm.fp8_gemm_nt((a, sa), rhs, out)
    with pytest.raises(TypeError, match="^compiled_dims: expected a str, got int"):
        fp8gemm.fp8_gemm_nt((a, sa), rhs, out, compiled_dims=2)
    with pytest.raises(TypeError, match="^disable_ue8m0_cast: expected a bool, got int"):
        fp8gemm.fp8_gemm_nt((a, sa), rhs, out, disable_ue8m0_cast=1)
    with pytest.raises(NotImplementedError, match="^c: an FP32 accumulator"):
        fp8gemm.fp8_gemm_nt((a, sa), rhs, out, c=torch.zeros(M, N))
    with pytest.raises(NotImplementedError, match=r"^recipe: only \(1, 128, 128\)"):
        fp8gemm.fp8_gemm_nt((a, sa), rhs, out, recipe=(1, 1, 128))
    with pytest.raises(NotImplementedError, match=r"^a\[1\]: int32 scales"):
        fp8gemm.fp8_gemm_nt((a, sa.view(torch.int32)), rhs, out)  # same address, shape, strides
    with pytest.raises(TypeError, match="^b: expected dtype torch.float8_e4m3fn"):
        fp8gemm.fp8_gemm_nt((a, sa), (b.view(torch.uint8), sb), out)
    with pytest.raises(ValueError, match="^out: expected a contiguous"):
        fp8gemm.fp8_gemm_nt((a, sa), rhs, out.t().contiguous().t())  # same shape, other strides
    with pytest.raises(ValueError, match="^sa: expected shape"):
        fp8gemm.fp8_gemm_nt((a, sa[:, :1]), rhs, out)
    assert fake.kinds() == ["prepare", "run"]
    fp8gemm.fp8_gemm_nt((a, sa), rhs, out, recipe=(1, 128, 128))  # the full checks, then the kept launch
    assert fake.kinds() == ["prepare", "run", "run"]


def test_an_fp32_d_at_a_kept_bf16_address_is_the_training_gemm(fake: Recorder,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    training = []
    monkeypatch.setattr(gemm, "fp8_gemm_nt_fp32", lambda *args: training.append(args))
    lhs, rhs, _ = _dense()
    memory = torch.zeros(M * N)
    fp32 = memory.view(M, N)
    bf16 = memory.view(torch.bfloat16)[:M * N].view(M, N)  # same address, shape and strides as fp32
    assert (bf16.data_ptr(), bf16.shape, bf16.stride()) == (fp32.data_ptr(), fp32.shape, fp32.stride())
    fp8gemm.fp8_gemm_nt(lhs, rhs, bf16)
    fp8gemm.fp8_gemm_nt(lhs, rhs, fp32)
    assert fake.kinds() == ["prepare", "run"] and len(training) == 1 and training[0][2] is fp32


def test_newer_grouped_names_keep_only_the_fast_layout(fake: Recorder, monkeypatch) -> None:
    import fp8gemm.contiguous

    layouts = []
    monkeypatch.setattr(validate, "check_contiguous_layout", lambda m, g, require_aligned: layouts.append(g))
    regrouped = []
    monkeypatch.setattr(fp8gemm.contiguous, "gemm_any_layout", lambda *args: regrouped.append(args))
    monkeypatch.setattr(gemm, "require_sm90", lambda index: None)
    monkeypatch.setattr(gemm, "_on_device", lambda index: contextlib.nullcontext())
    lhs, rhs, out, m_indices = _contiguous()
    fp8gemm.m_grouped_fp8_gemm_nt_contiguous(lhs, rhs, out, m_indices)
    fp8gemm.m_grouped_fp8_gemm_nt_contiguous(lhs, rhs, out, m_indices, groups_aligned=False)
    assert fake.kinds() == ["prepare", "run"] and len(regrouped) == 1
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "1")
    env.refresh()
    fp8gemm.m_grouped_fp8_gemm_nt_contiguous(lhs, rhs, out, m_indices)  # values checked, then kept launch
    assert layouts == [G] and fake.kinds() == ["prepare", "run", "run"]
    mlhs, mrhs, mout, masked_m = _masked()
    fp8gemm.m_grouped_fp8_gemm_nt_masked(mlhs, mrhs, mout, masked_m, 4)
    with pytest.raises(TypeError, match="expected_m: expected a positive int, got bool"):
        fp8gemm.m_grouped_fp8_gemm_nt_masked(mlhs, mrhs, mout, masked_m, True)
    with pytest.raises(NotImplementedError, match="^recipe"):
        fp8gemm.m_grouped_fp8_gemm_nt_masked(mlhs, mrhs, mout, masked_m, 4, recipe=(2, 128, 128))
    assert fake.kinds()[3:] == ["prepare", "run"]
