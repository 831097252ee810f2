"""The README keeps up with the code: every environment variable documented, no promise the code does
not keep, no pointer to a file the repository does not have; and there is a LICENSE."""

from __future__ import annotations

import re
from pathlib import Path

from fp8gemm import env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_license_file_matches_the_package_metadata() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()


def test_every_environment_variable_is_documented() -> None:
    names = set(re.findall(r'"((?:FP8GEMM|DG)_[A-Z_]+)"', Path(env.__file__).read_text()))
    assert len(names) > 8
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing


def test_no_claim_that_nothing_compiles_per_m() -> None:
    assert "never compiles per M" not in README
    assert "every M" in README  # precompile covers every M up to a bound, and says so


def test_no_pointer_to_files_the_repository_lacks() -> None:
    assert "DESIGN.md" not in README
    for path in re.findall(r"`((?:docs|examples|tools|benchmarks)/[\w./-]+\.(?:md|py))`", README):
        assert (ROOT / path).is_file(), path


def test_the_constraints_table_names_each_argument() -> None:
    section = README.split("### Constraints, all in one place")[1].split("\n## ")[0]
    for name in ("`a`", "`b`", "`k`", "`n`", "`sa`", "`sb`", "`out`", "`m_indices`", "`masked_m`",
                 "`expected_m`", "addresses", "devices"):
        assert name in section, name
