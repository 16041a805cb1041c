"""Lowering a :class:`~hwnas.ir.GraphIR` to ONNX and to TVM Relax.

ONNX comes from hwnas's emitter (:mod:`hwnas.ir.onnx_emitter`); an op it does
not know falls back to torch's dynamo exporter, logged once. The dynamo
exporter and TVM's torch frontend also stay callable for the old path
(``lowering="torch"``), which benchmarks compare against.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import CompileError, ConfigError, HwnasError
from hwnas.notices import log_once

if TYPE_CHECKING:
    import onnx

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
    if opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset {opset} is too old", hint=f"use opset {MIN_OPSET} or newer")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ir.source == "onnx" and ir.onnx_path is not None:
        if ir.onnx_path.resolve() != path.resolve():
            shutil.copyfile(ir.onnx_path, path)
        return path
    if ir.module is None or ir.example_inputs is None:
        raise ConfigError(
            f"IR {ir.name!r} ({ir.source}) has no torch program to export to ONNX",
            hint="build the IR with GraphIR.from_module or GraphIR.from_subnet",
        )
    if ir.lowering == "hwnas":
        from hwnas.ir.onnx_emitter import NotLowerable, emit

        try:
            emitted = emit(ir, opset)
        except NotLowerable as exc:
            log_once(
                f"ONNX emitter: {exc}; exporting with torch's dynamo exporter instead (slower)",
                logger="hwnas.ir",
            )
        else:
            emitted.write(path)
            return path
    return export_onnx_dynamo(ir, path, opset=opset)


def export_onnx_dynamo(ir: GraphIR, path: Path, *, opset: int = 18) -> Path:
    """torch's dynamo ONNX exporter on the IR's exported program, checked with ``onnx.checker``."""
    import onnx
    import torch

    try:
        exported = ir.exported
        with _quiet_exporter():
            torch.onnx.export(
                exported,
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
    """Relax from the emitted ONNX (TVM's ONNX frontend); torch's frontend for ``lowering="torch"``,
    for an op the emitter does not know, and to keep the module's own parameters as inputs."""
    try:
        if ir.source == "onnx" and ir.onnx_path is not None:
            return relax_from_onnx(ir, ir.onnx_path, keep_params_as_input=keep_params_as_input)
        if ir.lowering == "hwnas" and ir.module is not None and not keep_params_as_input:
            from hwnas.ir.onnx_emitter import NotLowerable, emit_onnx

            try:
                model = emit_onnx(ir)
            except NotLowerable as exc:
                log_once(
                    f"ONNX emitter: {exc}; importing into TVM with its torch frontend instead (slower)",
                    logger="hwnas.ir",
                )
            else:
                return relax_from_onnx(ir, model)
        if ir.exported is not None:
            from tvm.relax.frontend.torch import from_exported_program

            with _quiet_exporter():
                return from_exported_program(
                    ir.exported,
                    keep_params_as_input=keep_params_as_input,
                    unwrap_unit_return_tuple=True,
                )
    except HwnasError:
        raise
    except Exception as exc:
        raise CompileError(
            f"importing IR {ir.name!r} into TVM Relax failed: {_first_line(exc)}"
        ) from exc
    raise ConfigError(
        f"IR {ir.name!r} ({ir.source}) has neither a torch program nor an ONNX file to lower",
        hint="build the IR with GraphIR.from_module, from_subnet or from_onnx",
    )


def relax_from_onnx(
    ir: GraphIR, model: Path | onnx.ModelProto, *, keep_params_as_input: bool = False
) -> Any:
    """TVM's ONNX frontend on an ONNX file (or model) of ``ir``; input shapes and dtypes from the IR."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    if isinstance(model, Path):
        model = onnx.load(str(model))
    shapes = {spec.name: list(spec.shape) for spec in ir.input_specs}
    dtypes = {spec.name: spec.dtype for spec in ir.input_specs}
    mod = from_onnx(
        model, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=keep_params_as_input
    )
    return fold_constant_reshapes(mod)


def fold_constant_reshapes(mod: Any) -> Any:
    """``reshape(constant)`` replaced by the reshaped constant, in numpy.

    TVM's ONNX frontend reshapes every conv bias to ``(1, C, 1, 1)``;
    Relax's ``FoldConstant`` would compile and run a kernel for each of them
    (2.5 s of a 3 s compile for a small ResNet here). This takes milliseconds.
    """
    import tvm
    from tvm import relax

    reshape = tvm.ir.Op.get("relax.reshape")
    constant = tvm.ir.expr.GenericConst

    @relax.expr_functor.mutator
    class Folder(relax.PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:
            call = super().visit_call_(call)
            if call.op == reshape and isinstance(call.args[0], constant):
                shape = [int(v) for v in call.args[1].values]
                return relax.const(call.args[0].value.numpy().reshape(shape))
            return call

    main = mod.get_global_var("main")
    mod[main] = Folder(mod).visit_expr(mod[main])
    return mod


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
