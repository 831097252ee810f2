"""The package installs its device headers and data files (the JIT needs them at run time)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_headers_and_data(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fp8gemm", src / "fp8gemm", ignore=shutil.ignore_patterns("__pycache__"))
    # Files that must ship, whatever else is in the tree at the moment.
    (src / "fp8gemm" / "include" / "fp8gemm" / "ptx").mkdir(parents=True, exist_ok=True)
    (src / "fp8gemm" / "include" / "fp8gemm" / "ptx" / "probe_test.cuh").write_text("// probe\n")
    (src / "fp8gemm" / "data").mkdir(exist_ok=True)
    (src / "fp8gemm" / "data" / "probe_test.json").write_text("{}\n")

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("fp8gemm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fp8gemm/include/fp8gemm/ptx/probe_test.cuh" in names
    assert "fp8gemm/data/probe_test.json" in names
    assert "fp8gemm/reference.py" in names and "fp8gemm/__main__.py" in names
