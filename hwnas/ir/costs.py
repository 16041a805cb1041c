"""Multiply-accumulate counts of the ops that do arithmetic worth counting (conv, linear, matmul, attention).

Like OFA's and fvcore's counters (and torch's ``FlopCounterMode``, whose flops
are 2 x these MACs), element-wise ops, norms and pooling count zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = Sequence[int]


def conv_macs(output: Shape, weight: Shape) -> int:
    """Each output element reads ``C_in / groups x kernel`` inputs; ``weight`` is ``(C_out, C_in/g, *k)``."""
    return math.prod(output) * math.prod(weight[1:])


def linear_macs(output: Shape, weight: Shape) -> int:
    """``weight`` is ``(out_features, in_features)``."""
    return math.prod(output) * int(weight[1])


def matmul_macs(output: Shape, left: Shape) -> int:
    """Batched or plain matmul: every output element is a dot product over ``left``'s last axis."""
    return math.prod(output) * int(left[-1]) if left else 0


def attention_macs(query: Shape, key: Shape, value: Shape) -> int:
    """Scaled dot-product attention: ``Q K^T`` plus ``softmax(.) V``."""
    rows = math.prod(query[:-1])
    return rows * int(key[-2]) * (int(query[-1]) + int(value[-1]))


# kind -> which MAC formula applies (names are the normalised op kinds of the IR)
MAC_KINDS = frozenset({"conv1d", "conv2d", "conv3d", "linear", "matmul", "attention"})
