"""Lowering a :class:`~hwnas.ir.GraphIR` to ONNX (torch's dynamo exporter) and to TVM Relax.

The dynamo exporter is used rather than the TorchScript one: it is the one
torch maintains, writes opset 18 graphs with batch norm already folded, and
its output is the one TVM's ONNX frontend imports cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import CompileError, ConfigError

if TYPE_CHECKING:
    from hwnas.ir.graph import GraphIR

MIN_OPSET = 17


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Exporters log about optional torchvision ops and warn about pytree internals: noise here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def to_onnx(ir: GraphIR, path: Path, *, opset: int = 18) -> Path:
    import onnx

    if opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset {opset} is too old", hint=f"use opset {MIN_OPSET} or newer")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ir.source == "onnx" and ir.onnx_path is not None:
        if ir.onnx_path.resolve() != path.resolve():
            shutil.copyfile(ir.onnx_path, path)
        return path
    if ir.exported is None or ir.example_inputs is None:
        raise ConfigError(
            f"IR {ir.name!r} ({ir.source}) has no torch program to export to ONNX",
            hint="build the IR with GraphIR.from_module or GraphIR.from_subnet",
        )
    import torch

    try:
        with _quiet_exporter():
            torch.onnx.export(
                ir.exported,
                ir.example_inputs,
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=[spec.name for spec in ir.input_specs],
                output_names=[spec.name for spec in ir.output_specs],
                external_data=False,
                verbose=False,
            )
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise CompileError(f"exporting IR {ir.name!r} to ONNX failed: {_first_line(exc)}") from exc
    return path


def to_relax(ir: GraphIR, *, keep_params_as_input: bool = False) -> Any:
    try:
        if ir.exported is not None:
            from tvm.relax.frontend.torch import from_exported_program

            with _quiet_exporter():
                return from_exported_program(
                    ir.exported,
                    keep_params_as_input=keep_params_as_input,
                    unwrap_unit_return_tuple=True,
                )
        if ir.source == "onnx" and ir.onnx_path is not None:
            import onnx
            from tvm.relax.frontend.onnx import from_onnx

            model = onnx.load(str(ir.onnx_path))
            shapes = {spec.name: list(spec.shape) for spec in ir.input_specs}
            dtypes = {spec.name: spec.dtype for spec in ir.input_specs}
            return from_onnx(
                model,
                shape_dict=shapes,
                dtype_dict=dtypes,
                keep_params_in_input=keep_params_as_input,
            )
    except Exception as exc:
        raise CompileError(
            f"importing IR {ir.name!r} into TVM Relax failed: {_first_line(exc)}"
        ) from exc
    raise ConfigError(
        f"IR {ir.name!r} ({ir.source}) has neither a torch program nor an ONNX file to lower",
        hint="build the IR with GraphIR.from_module, from_subnet or from_onnx",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
