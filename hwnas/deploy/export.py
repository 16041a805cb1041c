"""Exporting a chosen subnet as a deployable artifact directory, and verifying one.

An artifact directory holds the compiled library, the ONNX model, static
weights, reference inputs/outputs, ``manifest.json`` and a standalone
``run.py``; nothing in it needs hwnas or torch to run.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.deploy import run_artifact
from hwnas.digests import sha256_file
from hwnas.errors import ConfigError, MeasurementError
from hwnas.measurement.artifact import Artifact
from hwnas.search_core.objectives import Constraint

if TYPE_CHECKING:
    import torch

    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.results import Measurement
    from hwnas.measurement.target import Target
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet
    from hwnas.search_core.evaluator import Evaluation

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "hwnas-artifact/1"
COMPILED_DIR = "compiled"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.npz"
REFERENCE_FILE = "reference.npz"
RUNNER_FILE = "run.py"

_PICK = re.compile(
    r"^\s*(?P<dir>max|min)\s+(?P<metric>[A-Za-z_][\w]*)\s*(?:where\s+(?P<where>.+))?$"
)


# -- choosing a subnet from a run ---------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """``max accuracy where latency<=5ms``: optimise one metric among evaluations meeting constraints."""

    direction: str
    metric: str
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pick:
        match = _PICK.match(text)
        if match is None:
            raise ConfigError(
                f"cannot read --pick {text!r}",
                hint="write 'max|min METRIC [where CONSTRAINT[, CONSTRAINT...]]', e.g. 'max accuracy where latency<=5ms'",
            )
        where = match["where"] or ""
        constraints = tuple(
            Constraint.parse(c.strip()) for c in re.split(r",|\band\b", where) if c.strip()
        )
        return cls(match["dir"], match["metric"], constraints)

    def choose(self, evaluations: Sequence[Evaluation]) -> Evaluation:
        """The best successful evaluation meeting every constraint; a clear error if none does."""
        usable = [e for e in evaluations if e.ok and self.metric in e.values]
        if not usable:
            metrics = sorted({m for e in evaluations if e.ok for m in e.values})
            raise ConfigError(
                f"no successful evaluation in this run has metric {self.metric!r}",
                hint=f"metrics in the run: {', '.join(metrics) or 'none'}",
            )
        measured = {m for e in usable for m in e.values}
        unknown = [c.metric for c in self.constraints if c.metric not in measured]
        if unknown:
            raise ConfigError(
                f"--pick constrains {', '.join(map(repr, unknown))}, which this run did not measure",
                hint=f"metrics in the run: {', '.join(sorted(measured))}",
            )
        meeting = [
            e for e in usable if all(c.violation(e.values[c.metric]) == 0 for c in self.constraints)
        ]
        if not meeting:
            closest = {
                c.metric: min(e.values[c.metric] for e in usable)
                for c in self.constraints
                if c.op == "<="
            }
            raise ConfigError(
                f"no evaluated subnet meets {', '.join(map(str, self.constraints))}",
                hint=f"loosen the bound; smallest values seen: {closest}"
                if closest
                else "loosen the bound",
            )
        sign = -1.0 if self.direction == "max" else 1.0
        # Ties (equal accuracy is common on small validation sets) go to the
        # cheaper subnet: lower latency, then fewer MACs.
        return min(
            meeting,
            key=lambda e: (
                sign * e.values[self.metric],
                e.values.get("latency", 0.0),
                e.values.get("macs", 0.0),
            ),
        )


# -- export ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedArtifact:
    """Where an export went and what its manifest says."""

    directory: Path
    manifest: Mapping[str, Any] = field(hash=False)

    @property
    def median_ms(self) -> float:
        return float(self.manifest["latency"]["median_ms"])


def export_subnet(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    target: Target | str,
    out: str | Path,
    *,
    protocol: MeasurementProtocol | None = None,
    accuracy: float | None = None,
    checkpoint: str | Path | None = None,
    cache: Any = True,
    overwrite: bool = False,
    precision: str | None = None,
    data: Any = None,
    calibration: Any = None,
    quality: Mapping[str, Any] | None = None,
) -> ExportedArtifact:
    """Compile ``subnet`` for ``target``, verify and measure it, and write a deployable directory at ``out``.

    ``precision`` (default: the subnet's precision gene, else fp32) ``int8``
    exports the statically quantised model (calibrated on ``calibration``
    examples, else ``data``'s calibration split), verified against the
    quantised reference. ``quality`` (metric, value, definition) goes into the manifest.
    """
    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.protocol import DEFAULT_PROTOCOL
    from hwnas.measurement.resolve import resolve_target
    from hwnas.search_core.precision import Int8Models, split_precision

    target = resolve_target(target) if isinstance(target, str) else target
    subnet, gene = split_precision(supernet, subnet)
    precision = precision or gene
    support = target.supports_precision(precision)
    if not support:
        raise ConfigError(f"cannot export for {target.name}: {support.reason}")
    protocol = protocol or DEFAULT_PROTOCOL
    if precision == "int8":
        if data is None and calibration is None:
            raise ConfigError(
                "an int8 export needs calibration data (the supernet's data or --calibration)"
            )
        ir = Int8Models(supernet, module, data, calibration=calibration).ir(subnet)
        rtol, atol = ir.metadata["tolerance"]
        protocol = dataclasses.replace(
            protocol,
            rtol=protocol.rtol if protocol.rtol is not None else rtol,
            atol=protocol.atol if protocol.atol is not None else atol,
        )
    else:
        ir = GraphIR.from_subnet(supernet, module, subnet)
    out = _prepare_directory(Path(out), overwrite)
    measurer = Measurer(target, protocol, cache=cache)
    measurement = measurer.measure(ir)  # verifies outputs against the reference before timing
    artifact = measurer.compile(ir)  # the artifact just measured, reused from the compile cache

    compiled = out / COMPILED_DIR
    shutil.copytree(artifact.root, compiled)
    ir.to_onnx(out / ONNX_FILE)
    if ir.module is not None:  # an int8 model keeps its weights inside model.onnx
        np.savez(
            out / WEIGHTS_FILE,
            **{k: v.detach().cpu().numpy() for k, v in ir.module.state_dict().items()},
        )
    inputs, outputs = measurer.reference(ir)
    np.savez(
        out / REFERENCE_FILE,
        **{f"input{i}": a for i, a in enumerate(inputs)},
        **{f"output{i}": a for i, a in enumerate(outputs)},
    )
    shutil.copyfile(run_artifact.__file__, out / RUNNER_FILE)

    manifest = {
        "format": MANIFEST_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "subnet": {
            "space": subnet.space,
            "key": subnet.key,
            "config": subnet.to_dict(),
            "precision": precision,
        },
        "supernet": {
            "name": supernet.name,
            "arguments": supernet.arguments,
            "checkpoint": _checkpoint_entry(checkpoint),
        },
        "target": {
            "spec": measurer.target.name,
            "kind": measurer.target.kind,
            "fingerprint": dict(artifact.fingerprint),
            "compile_details": dict(artifact.details),
        },
        "runtime": {
            "loader": artifact.loader,
            "entry": f"{COMPILED_DIR}/{artifact.entry}",
            "device": "cuda" if measurer.target.spec.device == "cuda" else "cpu",
        },
        "latency": _latency_entry(measurement),
        "accuracy": accuracy,
        "macs": ir.metadata.get("fp32_macs", ir.macs),
        "params": ir.metadata.get("fp32_params", ir.params),
        "peak_activation_bytes": ir.peak_activation_bytes,
        "inputs": [s.to_dict() for s in ir.input_specs],
        "outputs": [s.to_dict() for s in ir.output_specs],
        "reference": REFERENCE_FILE,
        "verification": {
            "rtol": measurement.protocol.rtol,
            "atol": measurement.protocol.atol,
            "max_abs_error_at_export": measurement.max_abs_error,
            "reference": _reference_note(precision),
        },
        "precision": _precision_entry(precision, ir),
        "quality": dict(quality) if quality else None,
        "versions": _versions(),
    }
    manifest["files"] = [
        {"path": p.relative_to(out).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return ExportedArtifact(out, manifest)


def _reference_note(precision: str) -> str:
    if precision != "int8":
        return "the fp32 torch subnet"
    from hwnas.search_core.precision import INT8_RANGE_SHARE

    return (
        "the int8 model read by onnxruntime without graph optimisation; int8 kernels round "
        "differently, so atol is the quantisation error itself (the largest |fp32 - int8| on "
        f"the reference input), at least {INT8_RANGE_SHARE:.0%} of the largest output; past "
        "the 0.5 cap on atol the rest is rtol"
    )


def _precision_entry(precision: str, ir: Any) -> dict[str, Any]:
    if precision != "int8":
        return {"dtype": "fp32"}
    return {
        "dtype": "int8",
        "scheme": ir.metadata.get("scheme"),
        "calibration_samples": ir.metadata.get("calibration_samples"),
        "fp32_ir_key": ir.metadata.get("fp32_ir_key"),
    }


def _prepare_directory(out: Path, overwrite: bool) -> Path:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"export directory {out} is not empty",
                hint="choose another --out, or pass --overwrite",
            )
        if not (out / MANIFEST).is_file():
            raise ConfigError(
                f"refusing to overwrite {out}: it is not an hwnas artifact (no {MANIFEST})",
                hint="choose an empty or new --out directory",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _checkpoint_entry(checkpoint: str | Path | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    return {"file": path.name, "sha256": sha256_file(path)}


def _latency_entry(m: Measurement) -> dict[str, Any]:
    return {
        "median_ms": m.median_ms,
        "p90_ms": m.p90_ms,
        "iqr_ms": m.iqr_s * 1e3,
        "mean_ms": m.mean_s * 1e3,
        "cv": m.cv,
        "throughput_per_s": m.throughput,
        "threads": m.threads,
        "timer": m.timer,
        "samples_ms": [s * 1e3 for s in m.samples_s],
        "peak_memory_bytes": m.peak_memory_bytes,
        "device": dict(m.device),
        "emulated": bool(m.fingerprint.get("emulated", False)),
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in ("hwnas", "torch", "apache-tvm", "onnx", "onnxruntime", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return versions


# -- verify ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    """What ``hwnas verify`` found: file problems by name, and whether outputs match the reference."""

    directory: Path
    file_problems: tuple[str, ...]
    outputs_checked: bool
    max_abs_error: float | None = None
    outputs_match: bool | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.file_problems and (not self.outputs_checked or bool(self.outputs_match))


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{directory} is not an hwnas artifact: {MANIFEST} is missing",
            hint="pass the directory `hwnas export --out` wrote",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the manifest was damaged"
        ) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(f"{path}: format {manifest.get('format')!r} is not {MANIFEST_FORMAT!r}")
    return manifest


def verify_artifact(directory: str | Path, *, check_outputs: bool = True) -> VerifyReport:
    """Re-hash every file against the manifest, then run the compiled model on its target against the reference.

    Tampered, truncated or missing files are reported by name (and outputs
    are then not run). Raises :class:`~hwnas.errors.TargetUnavailableError`
    if the artifact's target cannot run here and ``check_outputs`` is set.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    problems = tuple(run_artifact.check_files(manifest, directory))
    if problems or not check_outputs:
        return VerifyReport(
            directory,
            problems,
            outputs_checked=False,
            note="files differ from the manifest" if problems else "outputs not checked",
        )
    from hwnas.measurement.resolve import resolve_target

    target = resolve_target(manifest["target"]["spec"])
    target.check_available()
    artifact = Artifact.load(directory / COMPILED_DIR)
    reference = np.load(directory / manifest["reference"])
    inputs = [reference[f"input{i}"] for i in range(len(manifest["inputs"]))]
    expected = [reference[f"output{i}"] for i in range(len(manifest["outputs"]))]
    runner = target.load(artifact, target.threads(None))
    try:
        runner.set_inputs(inputs)
        runner.run()
        outputs = runner.outputs()
    except Exception as exc:
        raise MeasurementError(f"{directory}: running the compiled model failed: {exc}") from exc
    finally:
        runner.close()
    tolerance = manifest["verification"]
    error = max(float(np.max(np.abs(o - e))) for o, e in zip(outputs, expected))
    match = all(
        np.allclose(o, e, rtol=tolerance["rtol"], atol=tolerance["atol"])
        for o, e in zip(outputs, expected)
    )
    return VerifyReport(
        directory,
        (),
        outputs_checked=True,
        max_abs_error=error,
        outputs_match=match,
        note=f"ran on {target.name}",
    )
