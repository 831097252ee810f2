"""Device info without a GPU: H200 defaults, and the SM-count override."""

from __future__ import annotations

import pytest
import torch

from fp8gemm import device, get_num_sms, set_num_sms

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the defaults used without a GPU")


@pytest.fixture(autouse=True)
def restore_num_sms(monkeypatch):
    monkeypatch.setattr(device, "_num_sms_override", None)


@no_gpu
def test_defaults_without_gpu():
    assert get_num_sms() == 132
    assert device.max_shared_memory_per_block() == 232448
    assert device.is_sm90_available() is False


def test_set_num_sms_overrides():
    set_num_sms(100)
    assert get_num_sms() == 100


@pytest.mark.parametrize(
    "bad,error", [(0, ValueError), (-4, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_set_num_sms_rejects(bad, error):
    with pytest.raises(error, match="num_sms"):
        set_num_sms(bad)


@pytest.mark.gpu
def test_num_sms_from_device():
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    assert get_num_sms() == props.multi_processor_count
