"""Exporting a chosen subnet as a deployable artifact directory (verifying one is :mod:`hwnas.deploy.verify`).

An artifact directory holds the compiled library, the ONNX model, static
weights, reference inputs/outputs, ``manifest.json`` and a standalone
``run.py``; nothing in it needs hwnas or torch to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.deploy import run_artifact
from hwnas.deploy.manifest import (
    COMPILED_DIR,
    MANIFEST,
    MANIFEST_FORMAT,
    ONNX_FILE,
    REFERENCE_FILE,
    RUNNER_FILE,
    WEIGHTS_FILE,
    artifact_digest,
    read_manifest,
)
from hwnas.deploy.provenance import (
    copy_loader,
    plugin_entry,
    runtime_entry,
)
from hwnas.digests import sha256_file
from hwnas.errors import ConfigError
from hwnas.leftovers import pid_tag, sweep
from hwnas.search_core.objectives import Constraint

if TYPE_CHECKING:
    import torch

    from hwnas.ir import GraphIR
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.results import Measurement
    from hwnas.measurement.target import Target
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet
    from hwnas.search_core.evaluator import Evaluation

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
        known = {m for e in usable for m in e.values}
        unknown = [c.metric for c in self.constraints if c.metric not in known]
        if unknown:
            raise ConfigError(
                f"--pick: this run has no metric {', '.join(map(repr, unknown))}",
                hint=f"metrics in the run: {', '.join(sorted(known))}",
            )
        meeting = [
            e
            for e in usable
            if all(
                c.metric in e.values and c.violation(e.values[c.metric]) == 0
                for c in self.constraints
            )
        ]
        if not meeting:
            closest = {
                c.metric: min(e.values[c.metric] for e in usable if c.metric in e.values)
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

    @property
    def digest(self) -> str:
        """What to pin the artifact by: ``hwnas verify DIR --digest <this>``."""
        return artifact_digest(self.directory)


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

    The directory is built beside ``out`` and moved into place only when
    complete, so a failing export leaves any previous artifact untouched;
    ``overwrite`` replaces only a folder that checks out as an hwnas artifact.
    ``precision`` (default: the subnet's precision gene, else fp32) ``int8``
    exports the statically quantised model (calibrated on ``calibration``
    examples, else ``data``'s calibration split), verified against the
    quantised reference. ``quality`` (metric, value, definition) goes into the manifest.
    """
    from hwnas.ir import GraphIR
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
    final = Path(out)
    _check_replaceable(final, overwrite)
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
    with _staging_directory(final) as staging:
        manifest = _write_artifact(
            ir, supernet, subnet, target, staging, protocol, accuracy, checkpoint, cache,
            precision, quality,
        )  # fmt: skip
        _swap_into_place(staging, final)
    return ExportedArtifact(final, manifest)


def _write_artifact(
    ir: GraphIR,
    supernet: Supernet,
    subnet: Subnet,
    target: Target,
    out: Path,
    protocol: MeasurementProtocol,
    accuracy: float | None,
    checkpoint: str | Path | None,
    cache: Any,
    precision: str,
    quality: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Measure ``ir`` on ``target`` (outputs verified first) and write every file of the artifact into ``out``."""
    from hwnas.measurement.measurer import Measurer

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
    check = measurer.verification(ir).check  # what was verified before timing: its first input
    inputs, outputs = check.inputs[0], check.references[0]
    np.savez(
        out / REFERENCE_FILE,
        **{f"input{i}": a for i, a in enumerate(inputs)},
        **{f"output{i}": a for i, a in enumerate(outputs)},
    )
    shutil.copyfile(run_artifact.__file__, out / RUNNER_FILE)
    loader_file = copy_loader(artifact, out)

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
            "plugin": plugin_entry(measurer.target),
        },
        "runtime": runtime_entry(
            measurer.target, artifact, f"{COMPILED_DIR}/{artifact.entry}", loader_file
        ),
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
    return manifest


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse early (before compiling) to write where an export must not go."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and existing != out and not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a directory")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file", hint="choose a directory path")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError(
            f"export directory {out} is not empty", hint="choose another --out, or pass --overwrite"
        )
    try:
        manifest = read_manifest(out)
    except ConfigError as exc:
        raise ConfigError(
            f"refusing to overwrite {out}: it is not an hwnas artifact ({exc.message})",
            hint="choose an empty or new --out directory",
        ) from None
    problems = run_artifact.check_files(manifest, out)
    if problems:
        raise ConfigError(
            f"refusing to overwrite {out}: it holds more or other than an hwnas artifact "
            f"({problems[0]}{'; ...' if len(problems) > 1 else ''})",
            hint="move those files away, or choose another --out",
        )


@contextlib.contextmanager
def _staging_directory(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to build in; removed if the export fails."""
    import tempfile

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep(final.parent, f".{final.name}.")  # left by an export that was killed
        staging = Path(
            tempfile.mkdtemp(prefix=f".{final.name}.export-{pid_tag()}-", dir=final.parent)
        )
    except OSError as exc:
        raise ConfigError(
            f"--out {final}: cannot write in {final.parent} ({exc.strerror})",
            hint="choose a directory you can write to",
        ) from None
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, final: Path) -> None:
    """Move the finished artifact to ``final``; a previous one is moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{pid_tag()}-{staging.name.rsplit('-', 1)[-1]}")
        final.rename(old)
    try:
        staging.rename(final)
    except OSError:
        if old is not None:
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _reference_note(precision: str) -> str:
    if precision != "int8":
        return "the fp32 torch subnet"
    from hwnas.search_core.precision import INT8_RANGE_SHARE

    return (
        "the int8 model read by onnxruntime without graph optimisation; int8 kernels round "
        "differently, so atol is the quantisation error itself (the largest |fp32 - int8| on "
        f"the two check inputs, real calibration examples), at least {INT8_RANGE_SHARE:.0%} of the largest output; past "
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
