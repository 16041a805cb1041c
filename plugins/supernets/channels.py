"""Channel arithmetic shared by the supernets (torch-free, so search spaces can use it without torch).

Only rounding rules live here; layers are in :mod:`hwnas_plugins.supernets.elastic_ops`.
"""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (as MobileNet and OFA do)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded
