"""Precision as a search gene: fp32 or int8 subnets; int8 models built by static quantisation, scored as quantised.

A ``precision`` gene is added to a supernet's space; the int8 model of a subnet
is its BN-recalibrated static module quantised (:mod:`hwnas.ir.quantization`)
on the calibration split, and its accuracy or fidelity is that model's, run by ONNX Runtime.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import Gene, SearchSpace, Subnet

if TYPE_CHECKING:
    import numpy as np
    import torch

    from hwnas.ir import GraphIR
    from hwnas.model.supernet import Supernet

PRECISION_GENE = "precision"
PRECISIONS = ("fp32", "int8")
#: Calibration examples the int8 quantiser sees (ONNX Runtime's min/max calibration).
CALIBRATION_SAMPLES = 64
#: The least int8 tolerance, as a share of the reference's largest output (see :func:`int8_tolerance`).
INT8_RANGE_SHARE = 0.05


def parse_precisions(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"fp32,int8"`` as a checked tuple (fp32 first when present)."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t]
    unknown = [t for t in items if t not in PRECISIONS]
    if unknown or not items:
        raise ConfigError(
            f"precision {', '.join(unknown) or '(none)'} is not known",
            hint=f"precisions: {', '.join(PRECISIONS)}, e.g. --precision fp32,int8",
        )
    return tuple(p for p in PRECISIONS if p in items)


def precision_space(space: SearchSpace, precisions: Sequence[str]) -> SearchSpace:
    """``space`` with a ``precision`` gene appended (the space itself when only fp32 is searched)."""
    if tuple(precisions) == ("fp32",):
        return space
    if PRECISION_GENE in space.names:
        raise ConfigError(f"search space {space.name!r} already has a gene {PRECISION_GENE!r}")
    gene = Gene(
        PRECISION_GENE, tuple(precisions), description="numeric precision of the deployed model"
    )
    return SearchSpace(space.name, [*space.genes, gene])


def split_precision(supernet: Supernet, subnet: Subnet) -> tuple[Subnet, str]:
    """The architecture part of ``subnet`` (a subnet of ``supernet``'s own space) and its precision."""
    config = subnet.to_dict()
    precision = str(config.pop(PRECISION_GENE, "fp32"))
    return supernet.space.subnet(config), precision


def load_calibration(path: str | Path) -> np.ndarray:
    """Calibration examples from an ``.npy`` file or the array ``x`` of an ``.npz`` (N examples, input-shaped)."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"calibration file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ConfigError(
            f"calibration file {path}: not a numpy .npy or .npz ({exc})",
            hint="write it with numpy.savez(path, x=examples)",
        ) from None
    if isinstance(loaded, np.ndarray):
        return loaded
    if "x" not in loaded.files:
        raise ConfigError(
            f"calibration file {path} has no array 'x' (found {', '.join(loaded.files) or 'none'})",
            hint="write it with numpy.savez(path, x=examples)",
        )
    return loaded["x"]


def check_calibration_fits(supernet: Supernet, calibration: Any, where: str) -> None:
    """Raise :class:`ConfigError` now, before any search or quantisation, if ``calibration`` does not fit the supernet's input."""
    from hwnas.ir.nodes import TensorSpec
    from hwnas.ir.quantization import check_calibration

    spec = supernet.input_spec(supernet.space.largest())
    check_calibration(
        [TensorSpec(spec.name, tuple(spec.shape), spec.dtype)], calibration, where=where
    )


def int8_tolerance(int8: GraphIR, source: GraphIR) -> tuple[float, float]:
    """(rtol, atol) an int8 model's runtime must meet against its QDQ reference.

    int8 kernels requantise and round differently from the reference's plain
    reading of the QDQ graph, and the differences grow with depth. A runtime
    may differ from the reference by as much as quantising differed from fp32
    (the largest |fp32 - int8 reference| on the check's two inputs), and at least
    :data:`INT8_RANGE_SHARE` of the reference's largest output. Beyond the
    protocol's absolute cap (large logits) the rest becomes relative.
    """
    import numpy as np

    from hwnas.measurement.protocol import MAX_TOLERANCE
    from hwnas.measurement.verification import fixed_inputs, other_inputs, reference_outputs

    first = fixed_inputs(int8)
    scale = error = 0.0
    for inputs in (first, other_inputs(int8, first)):  # both inputs the output check runs
        quantised = reference_outputs(int8, inputs)
        exact = reference_outputs(source, inputs)
        scale = max(scale, *(float(np.max(np.abs(q))) for q in quantised))
        error = max(
            error, *(float(np.max(np.abs(q - e))) for q, e in zip(quantised, exact, strict=True))
        )
    atol = max(1e-6, error, INT8_RANGE_SHARE * scale)
    if atol <= MAX_TOLERANCE:
        return 0.0, atol
    return min(MAX_TOLERANCE, atol / max(scale, 1e-12)), MAX_TOLERANCE


#: How many int8 tolerances apart the check's two references must lie. The tolerance is the
#: quantisation error itself, so the float models' 10x cannot be asked; above 2x an output that
#: ignores its input still fails one of the two inputs (see hwnas.measurement.verification).
INT8_SIGNAL_MARGIN = 3.0
#: Calibration examples searched for the pair of check inputs (see :func:`use_real_check_inputs`).
CHECK_CANDIDATES = 16


def use_real_check_inputs(int8: GraphIR, source: GraphIR, samples: Sequence[np.ndarray]) -> None:
    """Check ``int8`` on two real calibration examples whose outputs differ most, not on noise.

    A trained network maps two random-noise inputs to nearly the same output,
    and an int8 tolerance is wide (the quantisation error), so a check on noise
    cannot tell a runtime that ignores its input from a right one. The first
    example stays; the second is, among the first :data:`CHECK_CANDIDATES`,
    the one whose int8 output lies farthest from the first's.
    """
    import numpy as np
    import torch

    from hwnas.measurement.verification import reference_outputs

    candidates = list(samples[:CHECK_CANDIDATES])
    if len(candidates) < 2:
        return
    first = reference_outputs(int8, [candidates[0]])

    def distance(sample: np.ndarray) -> float:
        outputs = reference_outputs(int8, [sample])
        return max(float(np.max(np.abs(a - b))) for a, b in zip(outputs, first, strict=True))

    farthest = max(candidates[1:], key=distance)
    int8.example_inputs = (torch.from_numpy(np.ascontiguousarray(candidates[0])),)
    int8.second_inputs = (torch.from_numpy(np.ascontiguousarray(farthest)),)


class Int8Models:
    """The int8 IRs of one supernet's subnets: recalibrated, lowered, quantised once (kept on disk) and cached."""

    def __init__(
        self,
        supernet: Supernet,
        module: torch.nn.Module,
        data: Any,
        *,
        directory: str | Path | None = None,
        samples: int = CALIBRATION_SAMPLES,
        calibration: Any = None,
        keep: int = 4,
    ) -> None:
        from hwnas.measurement.cache import default_cache_dir

        self.supernet = supernet
        self.module = module
        self.data = data
        self.directory = Path(directory) if directory else default_cache_dir() / "int8"
        self.samples = samples
        #: User-given calibration examples (checked per subnet); default: the data's calibration split.
        self.calibration = calibration
        self.keep = keep
        self._irs: OrderedDict[str, GraphIR] = OrderedDict()

    def calibration_samples(self, subnet: Subnet, ir: GraphIR) -> list[np.ndarray]:
        from hwnas.ir.quantization import check_calibration

        if self.calibration is not None:
            given = self.calibration
        else:
            x = self.data.calibration.x[: self.samples]
            given = self.supernet.static_input(x, subnet).detach().cpu().numpy()
        return check_calibration(ir.input_specs, given, where=f"int8 calibration of {subnet}")

    def fp32_source(self, subnet: Subnet) -> GraphIR:
        """The IR the int8 model is quantised from: the subnet with BN recalibrated (as its accuracy is)."""
        from hwnas.ir import GraphIR
        from hwnas.model.bn_calibration import calibrate_subnet

        static = calibrate_subnet(
            self.supernet, self.module, subnet, self.data.calibration.batches(256)
        )
        return GraphIR.from_module(
            static,
            (self.supernet.example_input(subnet),),
            name=f"{self.supernet.name}/{subnet.key}",
            metadata={
                "supernet": self.supernet.name,
                "arguments": self.supernet.arguments,
                "space": subnet.space,
                "subnet": subnet.to_dict(),
                "subnet_key": subnet.key,
            },
        )

    def ir(self, subnet: Subnet) -> GraphIR:
        """The int8 model of ``subnet`` (an architecture of the supernet's own space) as an ONNX-sourced IR."""
        from hwnas.ir.quantization import load_int8, quantize_int8

        if subnet.key in self._irs:
            self._irs.move_to_end(subnet.key)
            return self._irs[subnet.key]
        source = self.fp32_source(subnet)
        samples = self.calibration_samples(subnet, source)
        digest = hashlib.sha256(b"".join(s.tobytes() for s in samples)).hexdigest()[:12]
        folder = self.directory / f"{source.key}-{digest}"
        if (folder / "int8.onnx").is_file():  # quantised before (same weights and calibration)
            ir = load_int8(folder / "int8.onnx", source, len(samples))
        else:
            ir = quantize_int8(source, samples, folder)
        use_real_check_inputs(ir, source, samples)
        ir.metadata["tolerance"] = list(int8_tolerance(ir, source))
        ir.metadata["signal_margin"] = INT8_SIGNAL_MARGIN
        self._irs[subnet.key] = ir
        while len(self._irs) > self.keep:
            self._irs.popitem(last=False)
        return ir


class QuantizedScore:
    """Accuracy or fidelity of int8 subnets: the quantised model run by ONNX Runtime on the validation split."""

    def __init__(self, models: Int8Models, metric: str) -> None:
        if metric not in ("accuracy", "fidelity"):
            raise ConfigError(f"no int8 score for metric {metric!r}")
        self.models = models
        self.metric = metric
        self._cache: dict[str, float] = {}

    def __call__(self, subnet: Subnet) -> float:
        if subnet.key not in self._cache:
            self._cache[subnet.key] = self._score(subnet)
        return self._cache[subnet.key]

    def _score(self, subnet: Subnet) -> float:
        import numpy as np
        import onnxruntime as ort

        ir = self.models.ir(subnet)
        supernet, data = self.models.supernet, self.models.data
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(ir.onnx_path), options, providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        x = supernet.static_input(data.validation.x, subnet).detach().cpu().numpy()
        outputs = np.concatenate(
            [session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))]
        )
        if self.metric == "accuracy":
            return float((outputs.argmax(axis=1) == data.validation.y.numpy()).mean())
        teacher = data.teacher.numpy()
        cosine = (outputs * teacher).sum(axis=1) / (
            np.linalg.norm(outputs, axis=1) * np.linalg.norm(teacher, axis=1) + 1e-12
        )
        return float(cosine.mean())


class PrecisionScore:
    """``score(subnet)`` for a space with a precision gene: the fp32 score, or the int8 model's."""

    def __init__(self, supernet: Supernet, fp32: Any, int8: QuantizedScore | None) -> None:
        self.supernet = supernet
        self.fp32 = fp32
        self.int8 = int8

    def __call__(self, subnet: Subnet) -> float:
        arch, precision = split_precision(self.supernet, subnet)
        if precision == "int8":
            if self.int8 is None:
                raise ConfigError("this search has no int8 models")
            return self.int8(arch)
        return float(self.fp32(arch))
