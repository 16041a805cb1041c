"""Checking a compiled model against its reference: inputs, reference outputs, whether they carry signal, the comparison.

Every target is held to the same check before it is timed: two different
inputs, each compared with torch. A check whose two reference outputs lie
within the tolerance of each other could not tell a lowering that ignores
its input from a right one, so it does not count (:attr:`Check.signal`).
The check runs in the worker (:mod:`hwnas.measurement.timing`), the reference in the parent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from hwnas.ir import GraphIR

#: A check counts when, for some output value, the two inputs' references differ by at least
#: this many times the tolerance: then no output that ignores the input can pass both.
SIGNAL_MARGIN = 10.0
#: Where an IR's maker sets a lower margin (its ``metadata["signal_margin"]``): a model whose
#: tolerance is wide by nature (int8: the quantisation error itself). Above 2, an output that
#: ignores the input still fails one of the two inputs; below it, nothing is proven.
LEAST_SIGNAL_MARGIN = 2.5


@dataclass(frozen=True)
class Check:
    """Inputs a compiled model must turn into the reference outputs, for two different inputs.

    ``signal`` is how far apart the two references are, in tolerances (see
    :func:`signal`); ``weights`` says whose: ``"own"``, or ``"probe"`` for
    re-seeded weights (:mod:`hwnas.measurement.probe`) when the own ones carry none.
    """

    inputs: tuple[tuple[np.ndarray, ...], ...]
    references: tuple[tuple[np.ndarray, ...], ...]
    signal: float
    weights: str = "own"
    margin: float = SIGNAL_MARGIN

    @property
    def carries_signal(self) -> bool:
        return self.signal >= self.margin


def make_check(ir: GraphIR, rtol: float, atol: float, *, weights: str = "own") -> Check:
    """The two-input check of ``ir``: its fixed inputs and a second, different set; their references."""
    first = fixed_inputs(ir)
    samples = (tuple(first), tuple(other_inputs(ir, first)))
    references = tuple(tuple(reference_outputs(ir, list(inputs))) for inputs in samples)
    found = signal(references[0], references[1], rtol, atol)
    return Check(samples, references, found, weights, signal_margin(ir))


def signal_margin(ir: GraphIR) -> float:
    """How many tolerances apart ``ir``'s two references must lie: :data:`SIGNAL_MARGIN`, or
    its maker's lower ``metadata["signal_margin"]`` (never below :data:`LEAST_SIGNAL_MARGIN`)."""
    given = getattr(ir, "metadata", {}).get("signal_margin", SIGNAL_MARGIN)
    return min(SIGNAL_MARGIN, max(LEAST_SIGNAL_MARGIN, float(given)))


def signal(
    first: Sequence[np.ndarray], second: Sequence[np.ndarray], rtol: float, atol: float
) -> float:
    """Largest difference between two reference outputs, in units of the tolerance ``atol + rtol |x|``."""
    import numpy as np

    best = 0.0
    for a, b in zip(first, second, strict=True):
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a64.shape != b64.shape or a64.size == 0:
            continue
        scale = atol + rtol * np.maximum(np.abs(a64), np.abs(b64))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(a64 - b64) / scale  # 0/0 (equal, no tolerance) and NaNs count as nothing
        best = max(best, float(np.nan_to_num(ratio, nan=0.0, posinf=math.inf).max()))
    return best


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


def other_inputs(ir: GraphIR, first: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A second set of inputs unlike ``first``: the IR's own ``second_inputs`` when it has them,
    else fresh normal floats, and ids shuffled among the example's own (so they stay valid for
    any embedding the model has)."""
    import numpy as np

    if getattr(ir, "second_inputs", None) is not None:
        return [_as_numpy(x) for x in ir.second_inputs]

    rng = np.random.default_rng(1)
    arrays = []
    for array in first:
        if array.dtype.kind == "f":
            arrays.append(rng.standard_normal(array.shape).astype(array.dtype))
        else:
            flat = array.reshape(-1).copy()
            rng.shuffle(flat)
            if np.array_equal(flat, array.reshape(-1)):  # one value everywhere, or unlucky
                flat = np.roll(np.sort(flat), 1)
            arrays.append(flat.reshape(array.shape))
    return arrays


def reference_outputs(ir: GraphIR, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What a correct target computes on ``inputs``: the torch module's outputs, or for an ONNX
    model onnxruntime's with every graph optimisation off (the plain reading of the ONNX graph)."""
    if getattr(ir, "module", None) is not None:
        return [_as_numpy(x) for x in ir.reference_outputs(inputs)]
    onnx_path = getattr(ir, "onnx_path", None)
    if onnx_path is None:
        raise ConfigError(
            f"IR {ir.name!r} has neither a torch module nor an ONNX file to compute reference outputs",
            hint="build it with GraphIR.from_module, from_subnet or from_onnx",
        )
    stat = Path(onnx_path).stat()
    session = _plain_session(str(onnx_path), stat.st_mtime_ns, stat.st_size)
    names = [i.name for i in session.get_inputs()]
    return list(session.run(None, dict(zip(names, inputs, strict=True))))


@functools.lru_cache(maxsize=4)
def _plain_session(path: str, mtime_ns: int, size: int) -> Any:
    """onnxruntime's plain reading (no graph optimisation) of the ONNX file at ``path``, kept for
    the last few files: an int8 model's references are asked for some twenty times (its check
    inputs, its tolerance, its check) and a session costs more to build than to run.
    ``mtime_ns`` and ``size`` are in the key so a rewritten file gets a new session."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _as_numpy(value: Any) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)
