"""Shared test set-up: the `gpu` marker skips without an sm_90 device; seeded random generators; and a
private scratch directory for the whole session.

The tests never write into the user's kernel cache (``~/.cache/fp8gemm``) nor leave anything in
``/tmp``: before anything else runs, this file points ``FP8GEMM_CACHE_DIR`` at a fresh directory and
``TMPDIR`` (and `tempfile`, and so pytest's own ``tmp_path``) at another, both under one session
directory that is removed when the session ends. Subprocesses inherit both. Set
``FP8GEMM_TEST_CACHE_DIR`` to keep compiled kernels between runs in a directory of your choice
(e.g. on a GPU machine, where the first run compiles every kernel the tests use).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="fp8gemm-tests-"))
(_SESSION_DIR / "tmp").mkdir()
os.environ["FP8GEMM_CACHE_DIR"] = os.environ.get("FP8GEMM_TEST_CACHE_DIR") or str(_SESSION_DIR / "cache")
os.environ.pop("DG_JIT_CACHE_DIR", None)
os.environ["TMPDIR"] = str(_SESSION_DIR / "tmp")
tempfile.tempdir = str(_SESSION_DIR / "tmp")

import torch  # noqa: E402  (after the environment is set)

from fp8gemm.device import is_sm90_available  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_sm90_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA sm_90 (Hopper) GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator with a fixed seed, so every test sees the same random inputs."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def session_cache_dir() -> Path:
    """The kernel cache directory of this test session (``FP8GEMM_CACHE_DIR``)."""
    return Path(os.environ["FP8GEMM_CACHE_DIR"])
