"""The graph IR: a static network as ops with shapes and costs, kernel groups, and lowerings to ONNX and TVM.

Importing this package imports neither torch nor TVM; they load when an IR
is built from a module or lowered.
"""

from __future__ import annotations

from hwnas.ir.graph import GraphIR
from hwnas.ir.kernels import KernelGroup
from hwnas.ir.nodes import OpNode, TensorSpec

__all__ = ["GraphIR", "KernelGroup", "OpNode", "TensorSpec"]
