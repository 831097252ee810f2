"""The benchmark shape set (``fp8gemm/data/shapes.json``): loading and validating it.

Format: ``{"dense": [[m, n, k], ...], "grouped_contiguous": [{"groups", "m_per_group", "n", "k"}, ...],
"grouped_masked": [same keys]}``. Every key is optional; ``"about"`` (and any key starting with ``_``)
is a comment. Any other key, in the file or in an entry, is an error naming it: a misspelt key would
otherwise silently drop its shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_SHAPES_PATH", "DenseShape", "GroupedShape", "ShapeSet", "load_shapes"]

DEFAULT_SHAPES_PATH = Path(__file__).resolve().parent / "data" / "shapes.json"


@dataclass(frozen=True)
class DenseShape:
    """One dense GEMM: ``D[m, n] = A[m, k] @ B[n, k]^T``."""

    m: int
    n: int
    k: int

    def __str__(self) -> str:
        return f"{self.m}x{self.n}x{self.k}"


@dataclass(frozen=True)
class GroupedShape:
    """One grouped GEMM: ``groups`` groups of about ``m_per_group`` rows, each with its own ``B[n, k]``."""

    layout: str  # "contiguous" or "masked"
    groups: int
    m_per_group: int
    n: int
    k: int

    def __str__(self) -> str:
        return f"{self.layout[:4]} {self.groups}x{self.m_per_group} n={self.n} k={self.k}"


@dataclass(frozen=True)
class ShapeSet:
    """All shapes of one file, by layout."""

    dense: tuple[DenseShape, ...] = ()
    contiguous: tuple[GroupedShape, ...] = ()
    masked: tuple[GroupedShape, ...] = ()


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what}: expected a positive int, got {value!r}")
    return value


_KEYS = ("dense", "grouped_contiguous", "grouped_masked")
_GROUPED_KEYS = ("groups", "m_per_group", "n", "k")


def _is_comment(key: object) -> bool:
    return isinstance(key, str) and (key == "about" or key.startswith("_"))


def _list(data: dict, key: str, source: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{source}: {key}: expected a list, got {type(value).__name__}")
    return value


def _grouped(entries: list, layout: str, source: str) -> tuple[GroupedShape, ...]:
    shapes = []
    for i, entry in enumerate(entries):
        where = f"{source}: grouped_{layout}[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object with groups, m_per_group, n, k, got {entry!r}")
        unknown = [key for key in entry if key not in _GROUPED_KEYS and not _is_comment(key)]
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(_GROUPED_KEYS)})")
        values = [
            _positive_int(entry.get(key), f"{where}.{key}") for key in ("groups", "m_per_group", "n", "k")
        ]
        shapes.append(GroupedShape(layout, *values))
    return tuple(shapes)


def load_shapes(path: str | Path | None = None) -> ShapeSet:
    """Read a shapes file (default: the packaged ``data/shapes.json``) into a :class:`ShapeSet`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file (and the entry), when it is not JSON, has an unknown key, or an entry
            is malformed.
    """
    path = Path(path) if path is not None else DEFAULT_SHAPES_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such shapes file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON shapes file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with keys {', '.join(_KEYS)}, got "
                         f"{type(data).__name__}")
    unknown = [key for key in data if key not in _KEYS and not _is_comment(key)]
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r} (expected {', '.join(_KEYS)}; \"about\" and "
                         "keys starting with _ are comments)")
    dense = []
    for i, entry in enumerate(_list(data, "dense", str(path))):
        if not isinstance(entry, list | tuple) or len(entry) != 3:
            raise ValueError(f"{path}: dense[{i}]: expected [m, n, k], got {entry!r}")
        dense.append(DenseShape(*(_positive_int(v, f"{path}: dense[{i}]") for v in entry)))
    return ShapeSet(
        dense=tuple(dense),
        contiguous=_grouped(_list(data, "grouped_contiguous", str(path)), "contiguous", str(path)),
        masked=_grouped(_list(data, "grouped_masked", str(path)), "masked", str(path)),
    )
