"""Integer helpers and the scaling block shared by the host code (the device code has its own in
ptx/common.cuh)."""

from __future__ import annotations

# The scaling block of the recipe: activations carry one scale per 1x128 block, weights per 128x128
# block, and the kernel promotes its partial sums once per 128-deep K block.
BLOCK = 128


def ceil_div(x: int, y: int) -> int:
    """The smallest integer >= x / y, for non-negative x and positive y."""
    return (x + y - 1) // y


def round_up(x: int, to: int) -> int:
    """The smallest multiple of `to` that is >= x, for non-negative x and positive `to`."""
    return ceil_div(x, to) * to
