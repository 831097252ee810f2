"""Integer helpers shared by the host code (the device code has its own in ptx/common.cuh)."""

from __future__ import annotations


def ceil_div(x: int, y: int) -> int:
    """The smallest integer >= x / y, for non-negative x and positive y."""
    return (x + y - 1) // y


def round_up(x: int, to: int) -> int:
    """The smallest multiple of `to` that is >= x, for non-negative x and positive `to`."""
    return ceil_div(x, to) * to
