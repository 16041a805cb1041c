"""Checking a compiled model against its reference: fixed inputs, the reference outputs, and the comparison.

Every target is held to the same check before it is timed; the check runs in
the worker (:mod:`hwnas.measurement.timing`), the reference in the parent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from hwnas.ir import GraphIR


def compare_outputs(
    outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray], rtol: float, atol: float
) -> tuple[float, str]:
    """Largest absolute error, and what mismatched ('' when everything is within tolerance)."""
    import numpy as np

    if len(outputs) != len(reference):
        return math.inf, f"{len(outputs)} output(s) where the reference has {len(reference)}"
    worst = 0.0
    for i, (got, want) in enumerate(zip(outputs, reference, strict=True)):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return math.inf, f"output {i} has shape {got.shape}, the reference {want.shape}"
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
        diff = np.abs(got64 - want64)
        diff = np.where(np.isnan(got64) & np.isnan(want64), 0.0, diff)
        error = float(np.nanmax(diff, initial=0.0)) if diff.size else 0.0
        if np.isnan(diff).any():
            error = math.inf
        worst = max(worst, error)
        if not np.allclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True):
            bad = int((~np.isclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True)).sum())
            return worst, (
                f"output {i}: {bad} of {got.size} values differ from the torch reference "
                f"(max abs error {error:.3g}, rtol={rtol:g}, atol={atol:g})"
            )
    return worst, ""


def fixed_inputs(ir: GraphIR) -> list[np.ndarray]:
    """The IR's example inputs, or (an ONNX model has none) seeded random ones of its input specs."""
    import numpy as np

    if getattr(ir, "example_inputs", None) is not None:
        return [_as_numpy(x) for x in ir.example_inputs]
    rng = np.random.default_rng(0)
    arrays = []
    for spec in ir.input_specs:
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            raise ConfigError(
                f"input {spec}: numpy has no dtype {spec.dtype!r} to make inputs of"
            ) from None
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(spec.shape).astype(dtype))
        else:  # ids, masks and flags: 0/1 are valid for every embedding and mask
            arrays.append(rng.integers(0, 2, spec.shape).astype(dtype))
    return arrays


def reference_outputs(ir: GraphIR, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What a correct target computes: the torch module's outputs, or for an ONNX model
    onnxruntime's with every graph optimisation off (the plain reading of the ONNX graph)."""
    if getattr(ir, "module", None) is not None:
        return [_as_numpy(x) for x in ir.reference_outputs()]
    onnx_path = getattr(ir, "onnx_path", None)
    if onnx_path is None:
        raise ConfigError(
            f"IR {ir.name!r} has neither a torch module nor an ONNX file to compute reference outputs",
            hint="build it with GraphIR.from_module, from_subnet or from_onnx",
        )
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return list(session.run(None, dict(zip(names, inputs, strict=True))))


def _as_numpy(value: Any) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)
