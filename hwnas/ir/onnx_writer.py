"""An ONNX model whose weights are still numpy arrays, and writing it to a file with one copy of each.

Protobuf would copy every weight three times on the way to disk (into a
TensorProto, into the graph, into the serialised bytes). The weights are
written instead as a second ``graph`` field holding only the initializers,
which every protobuf reader merges into the first (repeated fields append).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import numpy as np
    import onnx

_LEN = 2  # protobuf wire type of length-delimited fields
_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_INITIALIZER = 5  # GraphProto.initializer
_TENSOR_RAW_DATA = 9  # TensorProto.raw_data


@dataclass(frozen=True)
class OnnxWithArrays:
    """``model`` without initializers, and the initializers as ``(name, array)`` pairs."""

    model: onnx.ModelProto
    arrays: Sequence[tuple[str, np.ndarray]]

    def proto(self) -> onnx.ModelProto:
        """The whole model in memory (copies every weight)."""
        from onnx import numpy_helper

        model = type(self.model)()
        model.CopyFrom(self.model)
        model.graph.initializer.extend(
            numpy_helper.from_array(array, name) for name, array in self.arrays
        )
        return model

    def write(self, path: Path) -> None:
        """Write the model to ``path``; it reads back equal to :meth:`proto`."""
        import numpy as np

        headers = []
        size = 0
        arrays = []
        for name, array in self.arrays:
            array = np.ascontiguousarray(array).reshape(array.shape)  # keeps 0-d arrays 0-d
            if array.dtype.byteorder == ">":
                array = array.astype(array.dtype.newbyteorder("<"))
            header = _tensor_header(name, array) + _key(_TENSOR_RAW_DATA) + _varint(array.nbytes)
            tensor_size = len(header) + array.nbytes
            prefix = _key(_GRAPH_INITIALIZER) + _varint(tensor_size)
            headers.append(prefix + header)
            arrays.append(array)
            size += len(prefix) + tensor_size
        with open(path, "wb") as out:
            out.write(self.model.SerializeToString())
            out.write(_key(_MODEL_GRAPH) + _varint(size))
            for header, array in zip(headers, arrays, strict=True):
                out.write(header)
                _write_array(out, array)


def _tensor_header(name: str, array: np.ndarray) -> bytes:
    import onnx
    from onnx import helper

    tensor = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
    tensor.dims.extend(array.shape)
    return tensor.SerializeToString()


def _write_array(out: BinaryIO, array: np.ndarray) -> None:
    if array.ndim == 0 or array.nbytes < 4096:
        out.write(array.tobytes())
    else:
        out.write(memoryview(array.reshape(-1)).cast("B"))


def _key(field: int) -> bytes:
    return _varint(field << 3 | _LEN)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
