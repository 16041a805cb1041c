"""``check_target``: does a target keep the contract of docs/PLUGINS.md on the kit's models?

It checks the class, cheap ``available``/``fingerprint``, pickling, compile in
this process and load in a measurement worker (outputs against torch on two
input sets), and that the artifact runs with its standalone loader alone.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError, MeasurementError
from hwnas.measurement.artifact import Artifact
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.target import Availability, Target, TargetSpec
from hwnas.testing.failures import ConformanceError, require

if TYPE_CHECKING:
    import numpy as np

    from hwnas.measurement.isolation import WorkerPool
    from hwnas.testing.models import KitModel

#: Quick timing: the kit checks the contract, not the speed.
KIT_PROTOCOL = MeasurementProtocol(
    warmup=1, repeats=3, min_repeat_ms=1.0, max_remeasure=0, timeout_s=300.0
)
#: Modules a standalone loader must not need (torch only where it is the runtime).
FORBIDDEN_IN_LOADERS = ("hwnas", "hwnas_targets", "hwnas_plugins", "torch")


@dataclass(frozen=True)
class ModelResult:
    """What one kit model gave on the target: errors against torch and the median latency."""

    model: str
    max_abs_error: float
    other_inputs_error: float
    standalone_error: float | None
    median_ms: float


@dataclass(frozen=True)
class TargetReport:
    """What :func:`check_target` found: the target, its fingerprint, and one result per kit model."""

    target: str
    fingerprint: dict[str, Any]
    models: tuple[ModelResult, ...] = field(default=())

    def __str__(self) -> str:
        rows = [
            f"  {m.model}: max abs error {m.max_abs_error:.2g} (other inputs {m.other_inputs_error:.2g}"
            + (f", standalone {m.standalone_error:.2g}" if m.standalone_error is not None else "")
            + f"), median {m.median_ms:.3f} ms"
            for m in self.models
        ]
        return "\n".join([f"{self.target}: conforms", *rows])


def check_target(
    target: str | Target,
    *,
    models: Sequence[KitModel] | None = None,
    deployable: bool = True,
    protocol: MeasurementProtocol = KIT_PROTOCOL,
    workdir: str | Path | None = None,
    pool: WorkerPool | None = None,
) -> TargetReport:
    """Check ``target`` (a spec string or a configured :class:`Target`) against the target contract.

    Raises :class:`~hwnas.errors.TargetUnavailableError` if it cannot run here
    (a test should skip), :class:`ConformanceError` saying what broke the
    contract, and returns a :class:`TargetReport` otherwise. ``deployable``
    requires a registered standalone loader that runs the artifact without
    hwnas; for a remote target (its artifacts run on the device, not here)
    the loader must be registered and copy into an artifact, and running it
    is left to the device. Artifacts go under ``workdir`` (default: a
    temporary directory).
    """
    from hwnas.measurement.resolve import resolve_target
    from hwnas.testing.models import kit_models

    if isinstance(target, str):
        target = resolve_target(target)
    check_target_class(type(target))
    check_cheap_queries(target)
    target.check_available()
    check_pickles(target)
    models = list(models) if models is not None else kit_models()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="hwnas-kit-")) if own_dir else Path(workdir)
    try:
        checked = [_check_model(target, model, protocol, root, pool) for model in models]
        standalone: list[float | None] = [None] * len(checked)
        if deployable and target.remote:  # its artifacts run on the device, not on this machine
            _check_loader_copies(target, checked, root / "standalone")
        elif deployable:
            standalone = _check_standalone(target, checked, root / "standalone")
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    results = tuple(
        dataclasses.replace(c.result, standalone_error=error)
        for c, error in zip(checked, standalone, strict=True)
    )
    return TargetReport(target.name, target.fingerprint(), results)


def check_target_class(cls: type[Target]) -> None:
    """The class-level contract: a kind, a description, options described, a tolerance."""
    where = f"target class {cls.__module__}.{cls.__qualname__}"
    require(issubclass(cls, Target), f"{where} does not subclass hwnas.Target")
    kind = getattr(cls, "kind", None)
    require(isinstance(kind, str) and kind, f"{where} sets no kind")
    require(
        all(c.isalnum() or c in "-_." for c in kind),
        f"{where}: kind {kind!r} may hold only letters, digits, '-', '_' and '.' "
        "(it starts spec strings: kind:device@host?options)",
    )
    require(bool(cls.description), f"{where} has no description (`hwnas targets` shows it)")
    require(
        isinstance(cls.options_help, dict)
        and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in cls.options_help.items()
        ),
        f"{where}: options_help must map each option name to what it means",
    )
    rtol, atol = cls.tolerance
    require(0 <= rtol <= 0.5 and 0 <= atol <= 0.5, f"{where}: tolerance {cls.tolerance} is absurd")
    listed = cls.listed_specs()
    require(
        bool(listed) and all(TargetSpec.parse(s).kind == kind for s in listed),
        f"{where}: listed_specs() must give spec strings of kind {kind!r}, not {listed}",
    )


def check_cheap_queries(target: Target) -> None:
    """``available``, ``fingerprint`` and ``hardware`` answer without importing the runtime; fingerprints are data."""
    runtime = type(target).runtime
    imported_before = bool(runtime) and runtime in sys.modules
    availability = target.available()
    require(
        isinstance(availability, Availability),
        f"{target.name}: available() must return an Availability, not {availability!r}",
    )
    require(
        availability.ok or bool(availability.reason),
        f"{target.name}: available() says no without saying why",
    )
    fingerprint = target.fingerprint()
    hardware = target.hardware()
    if runtime and not imported_before:
        require(
            runtime not in sys.modules,
            f"{target.name}: available()/fingerprint()/hardware() imported {runtime!r}; they must "
            "stay cheap (`hwnas targets` calls them for every target): use package metadata",
        )
    require(isinstance(fingerprint, dict), f"{target.name}: fingerprint() must return a dict")
    try:
        json.dumps(fingerprint, sort_keys=True)
        json.dumps(hardware, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(
            f"{target.name}: fingerprint() and hardware() must be JSON data ({exc})"
        ) from None
    require(
        isinstance(target.short_fingerprint(), str), f"{target.name}: short_fingerprint() is no str"
    )
    require(
        fingerprint == target.fingerprint(),
        f"{target.name}: fingerprint() changes between calls; it keys the measurement cache",
    )
    for key in ("runtime", "version"):
        require(
            bool(fingerprint.get(key)),
            f"{target.name}: fingerprint() has no {key!r} (name the runtime and its version)",
        )
    if "threads" in type(target).options_help:
        one, two = (
            _with_option(target, "threads", "1").fingerprint(),
            _with_option(target, "threads", "2").fingerprint(),
        )
        require(one != two, f"{target.name}: fingerprint() ignores the threads option")
        require(
            _with_option(target, "threads", "3").pinned_threads() == 3,
            f"{target.name}: threads=3 in the spec is not what pinned_threads() gives",
        )
    try:
        _with_option(target, "hwnas_kit_no_such_option", "1")
    except ConfigError:
        pass
    else:
        raise ConformanceError(f"{target.name}: an unknown spec option was accepted silently")


def check_pickles(target: Target) -> None:
    """The target goes to the measurement worker by pickle: it must survive the trip unchanged."""
    try:
        copy = pickle.loads(pickle.dumps(target))
    except Exception as exc:
        raise ConformanceError(
            f"{target.name}: the target does not pickle ({type(exc).__name__}: {exc}); keep "
            "runtime handles in what load() returns, not on the Target"
        ) from None
    require(
        copy.fingerprint() == target.fingerprint(),
        f"{target.name}: an unpickled copy has another fingerprint",
    )


def _with_option(target: Target, name: str, value: str) -> Target:
    options = tuple((k, v) for k, v in target.spec.options if k != name) + ((name, value),)
    return type(target)(dataclasses.replace(target.spec, options=options))


@dataclass(frozen=True)
class _Checked:
    """One kit model measured on the target, with what the standalone check needs."""

    result: ModelResult
    artifact: Artifact
    inputs: list[Any]
    expected: list[Any]
    tolerance: tuple[float, float]


def _check_model(
    target: Target,
    model: KitModel,
    protocol: MeasurementProtocol,
    root: Path,
    pool: WorkerPool | None,
) -> _Checked:
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.verification import compare_outputs

    ir = model.ir()
    where = f"{target.name}/{model.name}"
    measurer = Measurer(target, protocol, cache=None, artifact_dir=root / "artifacts", pool=pool)
    try:  # compiles, then checks outputs for two different inputs in the worker, then times
        measurement = measurer.measure(ir)
    except MeasurementError as exc:
        failure = getattr(exc, "failure", None)
        if failure is not None and failure.kind == "mismatch" and "input set 2" in failure.reason:
            raise ConformanceError(
                f"{where}: outputs for a second set of inputs are wrong ({failure.reason}); the "
                "runner must compute on the inputs it is given, not replay earlier results"
            ) from None
        raise ConformanceError(f"{where}: measuring failed: {exc.message}") from None
    artifact = measurer.compile(ir)  # the same artifact, from the store
    _check_artifact(target, artifact, ir)
    require(
        len(measurement.samples_s) == protocol.repeats and measurement.median_s > 0,
        f"{where}: timing gave {measurement.samples_s}",
    )
    tolerance = (float(measurer.protocol.rtol or 0.0), float(measurer.protocol.atol or 0.0))
    expected = model.reference(model.other_inputs)
    inputs = model.arrays(model.other_inputs)
    _, telling = compare_outputs(model.reference(model.inputs), expected, *tolerance)
    require(
        telling,
        f"{where}: tolerance rtol={tolerance[0]:g}, atol={tolerance[1]:g} is so wide that the "
        "outputs of two different inputs pass as equal; nothing it measures can be checked",
    )
    outcome = measurer.worker().call(
        run_on_inputs, (target, artifact, inputs, measurer.threads), timeout=protocol.timeout_s
    )
    if not outcome.ok:
        raise ConformanceError(
            f"{where}: loading and running other inputs failed: {outcome.reason}"
        )
    other_error, mismatch = compare_outputs(outcome.value, expected, *tolerance)
    require(
        not mismatch,
        f"{where}: on a second set of inputs, {mismatch} (does the runner read the inputs "
        "given to set_inputs, in order?)",
    )
    result = ModelResult(
        model.name, measurement.max_abs_error, other_error, None, measurement.median_ms
    )
    return _Checked(result, artifact, inputs, expected, tolerance)


def _check_standalone(
    target: Target, checked: Sequence[_Checked], directory: Path
) -> list[float | None]:
    from hwnas.measurement.verification import compare_outputs

    outputs = run_standalone(target, [(c.artifact, c.inputs) for c in checked], directory)
    errors: list[float | None] = []
    for c, got in zip(checked, outputs, strict=True):
        error, mismatch = compare_outputs(got, c.expected, *c.tolerance)
        require(
            not mismatch,
            f"{target.name}/{c.result.model}: run by its standalone loader, {mismatch}",
        )
        errors.append(error)
    return errors


def _check_loader_copies(target: Target, checked: Sequence[_Checked], directory: Path) -> None:
    from hwnas.deploy.provenance import copy_loader

    for index, c in enumerate(checked):
        root = directory / str(index)
        root.mkdir(parents=True, exist_ok=True)
        try:
            copy_loader(c.artifact, root)
        except ConfigError as exc:
            raise ConformanceError(f"{target.name}: {exc.message}", hint=exc.hint) from None


def _check_artifact(target: Target, artifact: Artifact, ir: Any) -> None:
    where = f"{target.name}: the artifact of {ir.name}"
    artifact.verify()
    require(artifact.ir_key == ir.key, f"{where} names IR {artifact.ir_key}, not {ir.key}")
    require(artifact.kind == target.kind, f"{where} says kind {artifact.kind!r}")
    require(
        tuple(artifact.inputs) == tuple(ir.input_specs)
        and tuple(artifact.outputs) == tuple(ir.output_specs),
        f"{where} does not carry the IR's input and output specs (build it with self.artifact())",
    )
    require(bool(artifact.loader), f"{where} names no loader")
    try:
        json.dumps(dict(artifact.details))
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{where}: details must be JSON data ({exc})") from None


def run_on_inputs(
    target: Target, artifact: Artifact, inputs: list[np.ndarray], threads: int
) -> list[np.ndarray]:
    """In a measurement worker: load ``artifact`` and run it once on ``inputs``."""
    runner = target.load(artifact, threads)
    try:
        runner.set_inputs(inputs)
        runner.run()
        outputs = [_host_array(o) for o in runner.outputs()]
        json.dumps(runner.device_info())  # goes into every measurement: plain data
        native = runner.time_native(3, 1.0)
        if native is not None and (len(native) != 3 or min(native) <= 0):
            raise ValueError(f"time_native(3, 1.0) gave {native}: want 3 positive seconds")
        return outputs
    finally:
        runner.close()


def _host_array(value: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(value)


_STANDALONE_SCRIPT = """
import json, sys
from pathlib import Path
for name in json.loads(sys.argv[2]):
    sys.modules[name] = None  # importing it now fails, as on a machine without it
import numpy as np
for root in map(Path, sys.argv[3:]):
    sys.path.insert(0, str(root))
    sys.modules.pop("run", None)
    import run
    sys.path.pop(0)
    model = run.open_model(json.loads((root / "manifest.json").read_text()), None, root)
    data = np.load(root / "inputs.npz")
    model.set_inputs([data[f"input{i}"] for i in range(len(data.files))])
    model.run()
    outputs = {f"output{i}": np.asarray(o) for i, o in enumerate(model.outputs())}
    np.savez(root / "outputs.npz", **outputs)
    getattr(model, "close", lambda: None)()
"""


def run_standalone(
    target: Target, jobs: Sequence[tuple[Artifact, list[np.ndarray]]], directory: Path
) -> list[list[np.ndarray]]:
    """Run each (artifact, inputs) as an exported artifact runs: ``run.py``'s loading, its loader file, no hwnas.

    One subprocess runs them all; it blocks hwnas (and torch unless it is the
    runtime), so a loader that imports them fails here rather than on a device.
    """
    import numpy as np

    from hwnas.deploy import run_artifact
    from hwnas.deploy.provenance import copy_loader, runtime_entry

    roots = []
    for index, (artifact, inputs) in enumerate(jobs):
        root = directory / str(index)
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(artifact.root, root / "compiled")
        shutil.copyfile(run_artifact.__file__, root / "run.py")
        try:
            loader_file = copy_loader(artifact, root)
        except ConfigError as exc:
            raise ConformanceError(f"{target.name}: {exc.message}", hint=exc.hint) from None
        manifest = {
            "runtime": runtime_entry(target, artifact, f"compiled/{artifact.entry}", loader_file),
            "target": {"compile_details": dict(artifact.details)},
        }
        (root / "manifest.json").write_text(json.dumps(manifest, default=str))
        np.savez(root / "inputs.npz", **{f"input{i}": a for i, a in enumerate(inputs)})
        roots.append(root)
    blocked = [m for m in FORBIDDEN_IN_LOADERS if m != type(target).runtime]
    result = subprocess.run(
        [sys.executable, "-c", _STANDALONE_SCRIPT, "", json.dumps(blocked), *map(str, roots)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-4:])
        raise ConformanceError(
            f"{target.name}: its standalone loader failed outside hwnas: {tail}",
            hint="a loader may import only the standard library, numpy and its runtime",
        )
    outputs = []
    for root in roots:
        data = np.load(root / "outputs.npz")
        outputs.append([data[f"output{i}"] for i in range(len(data.files))])
    return outputs
