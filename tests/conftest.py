"""Shared test set-up: the `gpu` marker skips without an sm_90 device; seeded random generators."""

from __future__ import annotations

import pytest
import torch

from fp8gemm.device import is_sm90_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_sm90_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA sm_90 (Hopper) GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator with a fixed seed, so every test sees the same random inputs."""
    return torch.Generator().manual_seed(1234)

