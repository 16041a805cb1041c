"""What a :class:`~hwnas.ir.GraphIR` is made of: tensor specs and op nodes, as plain frozen data.

Building them from torch or ONNX lives in :mod:`hwnas.ir.from_torch` and
:mod:`hwnas.ir.from_onnx`; costs in :mod:`hwnas.ir.costs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# bytes per element of the dtypes a graph can carry
DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor's static shape and dtype (``"float32"``, ``"int64"``, ...)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_BYTES.get(self.dtype, 4)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(data["name"]),
            shape=tuple(int(d) for d in data["shape"]),
            dtype=str(data["dtype"]),
        )

    def __str__(self) -> str:
        return f"{self.name}:{'x'.join(map(str, self.shape)) or 'scalar'}:{self.dtype}"


@dataclass(frozen=True)
class OpNode:
    """One op of the graph: what it computes, on which tensors, at what cost.

    ``inputs`` name activation tensors (graph inputs or other ops' outputs);
    ``weights`` are the parameters, buffers and constants it reads, named by
    their state-dict key (or ONNX initializer). ``params`` counts parameter
    elements the first time a parameter is used, so the graph's sum equals the
    module's. ``attrs`` are the op's non-tensor arguments, JSON-ready.
    """

    name: str
    op: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[TensorSpec, ...]
    weights: tuple[TensorSpec, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    macs: int = 0
    params: int = 0
    bytes_moved: int = 0
    module: str = ""

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "outputs": [t.to_dict() for t in self.outputs],
            "weights": [t.to_dict() for t in self.weights],
            "attrs": {k: to_jsonable(v) for k, v in self.attrs},
            "macs": self.macs,
            "params": self.params,
            "bytes_moved": self.bytes_moved,
            "module": self.module,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpNode:
        return cls(
            name=str(data["name"]),
            op=str(data["op"]),
            kind=str(data["kind"]),
            inputs=tuple(data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            weights=tuple(TensorSpec.from_dict(t) for t in data.get("weights", ())),
            attrs=tuple((k, freeze(v)) for k, v in data.get("attrs", {}).items()),
            macs=int(data.get("macs", 0)),
            params=int(data.get("params", 0)),
            bytes_moved=int(data.get("bytes_moved", 0)),
            module=str(data.get("module", "")),
        )


def freeze(value: Any) -> Any:
    """Lists (from JSON or torch) to tuples, recursively, so attrs stay hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def to_jsonable(value: Any) -> Any:
    """Tuples back to lists, recursively (the inverse of :func:`freeze`)."""
    if isinstance(value, tuple):
        return [to_jsonable(v) for v in value]
    return value
