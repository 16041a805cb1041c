"""Verifying an exported artifact, which may come from anyone: its manifest, its files, then its outputs.

The manifest is checked for shape and sane tolerances, every file against it
(no strays, no paths leaving the folder), the manifest itself against a pinned
digest, and the compiled model runs in an isolated worker, never in this process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.deploy import run_artifact
from hwnas.deploy.manifest import COMPILED_DIR, artifact_digest, read_manifest
from hwnas.errors import ConfigError, MeasurementError
from hwnas.measurement.artifact import Artifact

if TYPE_CHECKING:
    from hwnas.measurement.target import Target

#: Seconds verify waits for the compiled model to load and run once.
VERIFY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class VerifyReport:
    """What ``hwnas verify`` found: problems by file or field, and whether outputs match the reference."""

    directory: Path
    digest: str
    file_problems: tuple[str, ...]
    outputs_checked: bool
    max_abs_error: float | None = None
    outputs_match: bool | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.file_problems and (not self.outputs_checked or bool(self.outputs_match))


def verify_artifact(
    directory: str | Path, *, check_outputs: bool = True, digest: str | None = None
) -> VerifyReport:
    """Check the manifest, re-hash every file, then run the compiled model on its target in a worker.

    ``digest`` (from ``hwnas export``) pins the manifest: any edit to it (a
    latency, an accuracy, a tolerance, a file hash) is then caught. Problems
    are reported by name, and outputs are then not run. Raises
    :class:`~hwnas.errors.TargetUnavailableError` if the target cannot run here.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    found = artifact_digest(directory)
    problems: list[str] = []
    if digest is not None and _normalised(digest) != found:
        problems.append(f"manifest.json: digest {found} is not the pinned {_normalised(digest)}")
    problems += run_artifact.check_files(manifest, directory)
    problems += _compiled_matches_manifest(directory, manifest)
    if problems or not check_outputs:
        return VerifyReport(
            directory,
            found,
            tuple(problems),
            outputs_checked=False,
            note="the artifact differs from its manifest" if problems else "outputs not checked",
        )
    from hwnas.deploy.provenance import resolve_manifest_target

    target = resolve_manifest_target(manifest)  # names the plugin to install if it is missing
    target.check_available()
    artifact = Artifact.load(directory / COMPILED_DIR)
    reference = np.load(directory / manifest["reference"], allow_pickle=False)
    inputs = [reference[f"input{i}"] for i in range(len(manifest["inputs"]))]
    expected = [reference[f"output{i}"] for i in range(len(manifest["outputs"]))]
    outputs = _run_isolated(target, artifact, inputs)
    tolerance = manifest["verification"]
    error = max(float(np.max(np.abs(o - e), initial=0.0)) for o, e in zip(outputs, expected))
    match = len(outputs) == len(expected) and all(
        o.shape == e.shape and np.allclose(o, e, rtol=tolerance["rtol"], atol=tolerance["atol"])
        for o, e in zip(outputs, expected)
    )
    return VerifyReport(
        directory,
        found,
        (),
        outputs_checked=True,
        max_abs_error=error,
        outputs_match=match,
        note=f"ran on {target.name} in an isolated worker, rtol={tolerance['rtol']:g} atol={tolerance['atol']:g}",
    )


def _normalised(digest: str) -> str:
    digest = digest.strip().lower()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def _compiled_matches_manifest(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """The compiled artifact must be for the target the manifest names."""
    try:
        artifact = Artifact.load(directory / COMPILED_DIR)
    except ConfigError as exc:
        return [f"{COMPILED_DIR}: {exc.message}"]
    problems = []
    if artifact.target != manifest["target"]["spec"] or artifact.kind != manifest["target"]["kind"]:
        problems.append(
            f"manifest.json names target {manifest['target']['spec']!r} ({manifest['target']['kind']}), "
            f"but {COMPILED_DIR} was compiled for {artifact.target!r} ({artifact.kind})"
        )
    if f"{COMPILED_DIR}/{artifact.entry}" != manifest["runtime"]["entry"]:
        problems.append(
            f"manifest.json runs {manifest['runtime']['entry']!r}, "
            f"but the compiled artifact's entry is {COMPILED_DIR}/{artifact.entry}"
        )
    return problems


def _load_and_run(
    target: Target, artifact: Artifact, inputs: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Runs in the worker: load the compiled model, run it once, return its outputs."""
    runner = target.load(artifact, target.threads(None))
    try:
        runner.set_inputs(inputs)
        runner.run()
        return [np.asarray(o) for o in runner.outputs()]
    finally:
        runner.close()


def _run_isolated(
    target: Target, artifact: Artifact, inputs: Sequence[np.ndarray]
) -> list[np.ndarray]:
    from hwnas.measurement.isolation import Worker
    from hwnas.measurement.timing import thread_env

    worker = Worker(
        thread_env(target.threads(None)) if not target.remote else {}, name="hwnas-verify"
    )
    try:
        outcome = worker.call(
            _load_and_run, (target, artifact, list(inputs)), timeout=VERIFY_TIMEOUT_S
        )
    finally:
        worker.close()
    if not outcome.ok:
        raise MeasurementError(
            f"{artifact.root}: running the compiled model failed ({outcome.failure}): {outcome.reason}",
            hint="the artifact's library crashed, hung or raised; re-export it",
        )
    outputs = outcome.value
    if not all(isinstance(o, np.ndarray) and math.prod(o.shape) >= 0 for o in outputs):
        raise MeasurementError(f"{artifact.root}: the compiled model returned no arrays")
    return outputs
