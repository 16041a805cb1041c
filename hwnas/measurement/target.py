"""The :class:`Target` base class, target spec strings, and resolving a spec or preset to a target.

What every target shares (timing statistics, isolation, caching) lives in
:mod:`hwnas.measurement.measurer`; a target only adds what differs: compile and run.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.digests import stable_hash
from hwnas.errors import ConfigError, TargetUnavailableError
from hwnas.measurement.host import (
    cpu_fingerprint,
    module_available,
    package_version,
    usable_cores,
)
from hwnas.measurement.runner import Runner

#: The most threads a spec may pin: more is a typo, not a machine.
MAX_THREADS = 1024

if TYPE_CHECKING:
    from hwnas.ir import GraphIR
    from hwnas.measurement.artifact import Artifact


@dataclass(frozen=True)
class TargetSpec:
    """A parsed spec string: ``kind[:device][@host:port][?key=value&...]``.

    Examples: ``torch:cpu``, ``onnxruntime:cpu?threads=1``, ``tvm:llvm``,
    ``tvm-rpc:aarch64@127.0.0.1:9190?key=rasp4``.
    """

    kind: str
    device: str = ""
    address: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        text = text.strip()
        if not text:
            raise ConfigError(
                "empty target spec", hint="write e.g. 'onnxruntime:cpu' or 'tvm:llvm'"
            )
        head, _, query = text.partition("?")
        head, _, address = head.partition("@")
        kind, _, device = head.partition(":")
        if not kind:
            raise ConfigError(f"target spec {text!r} has no kind before ':'")
        try:
            options = tuple(
                urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
            )
        except ValueError as exc:
            raise ConfigError(
                f"target spec {text!r}: options after '?' must be key=value pairs joined by '&'"
            ) from exc
        names = [key for key, _ in options]
        repeated = sorted({key for key in names if names.count(key) > 1})
        if repeated:
            raise ConfigError(
                f"target spec {text!r} sets {', '.join(repeated)} more than once",
                hint="give each option once",
            )
        return cls(kind=kind, device=device, address=address, options=options)

    def option(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.options:
            if key == name:
                return value
        return default

    def __str__(self) -> str:
        text = self.kind + (f":{self.device}" if self.device else "")
        text += f"@{self.address}" if self.address else ""
        if self.options:
            text += "?" + urllib.parse.urlencode(self.options)
        return text


@dataclass(frozen=True)
class Availability:
    """Whether a target can run on this machine, and if not, why."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Availability:
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)

    def __bool__(self) -> bool:
        return self.ok


class Target(ABC):
    """A configured device + runtime that compiles and runs a :class:`~hwnas.ir.GraphIR`.

    A minimal target sets ``kind`` and ``runtime`` and implements
    :meth:`compile` (in the isolated compile worker: write files, return
    ``self.artifact(..., loader=NAME)``); a standalone loader registered as
    ``NAME`` (``hwnas_register_loaders``) runs them, both in the measurement
    worker (the default :meth:`load`) and in an exported artifact's ``run.py``.
    :meth:`available` and :meth:`fingerprint` have defaults built from
    ``runtime``/``runtime_package``; override them for devices the defaults
    cannot see (a GPU, a board). Timing, statistics, isolation and caching are
    the core's, not the target's. The target object is pickled to the compile
    and measurement workers: keep runtime handles (sessions, devices) in what
    :meth:`load` returns.
    docs/PLUGINS.md is the whole contract.
    """

    kind: ClassVar[str]
    description: ClassVar[str] = ""
    #: Options a spec may carry after ``?`` (others are rejected), with their meaning.
    options_help: ClassVar[dict[str, str]] = {}
    #: Measurements run on another machine (RPC): the local worker only drives them,
    #: several may run at once, and a lost device is retried on another one.
    remote: ClassVar[bool] = False
    #: The module the runtime is imported as (``"onnxruntime"``): the default
    #: :meth:`available` checks it can be imported, without importing it.
    runtime: ClassVar[str] = ""
    #: The distribution that installs it (``"onnxruntime"``, ``"openvino"``), for
    #: install hints and the runtime version in fingerprints; defaults to ``runtime``.
    runtime_package: ClassVar[str] = ""
    #: ``(rtol, atol)`` outputs must meet against the reference unless the protocol
    #: sets its own; reduced-precision targets (bf16, int8) declare wider ones.
    tolerance: ClassVar[tuple[float, float]] = (1e-3, 1e-4)
    #: Precisions of subnets this target runs: ``fp32`` (the torch-built IR) and ``int8`` (the
    #: ONNX QDQ model :mod:`hwnas.ir.quantization` writes); others are infeasible here.
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    def __init__(self, spec: TargetSpec) -> None:
        unknown = [k for k, _ in spec.options if k not in self.options_help]
        if unknown:
            allowed = ", ".join(self.options_help) or "none"
            raise ConfigError(
                f"target {spec}: unknown option(s) {', '.join(unknown)}",
                hint=f"options of {self.kind!r}: {allowed}",
            )
        self.spec = spec
        #: The preset name this target was resolved from, if any (see :func:`resolve_target`).
        self.preset: str | None = None
        self.pinned_threads()  # a bad threads= fails here, not deep inside a runtime

    @property
    def name(self) -> str:
        """The spec string this target was configured from."""
        return str(self.spec)

    @property
    def label(self) -> str:
        """How to show this target to a user: its preset name, else its spec."""
        return self.preset or self.name

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        """Spec strings ``hwnas targets`` shows for this kind (e.g. its CPU and GPU variants)."""
        return (cls.kind,)

    def available(self) -> Availability:
        """Can this target run here? Must be cheap: no heavy imports, no compilation.

        The default checks that ``runtime`` is importable (without importing it).
        """
        if self.runtime and not module_available(self.runtime):
            package = self.runtime_package or self.runtime
            return Availability.no(f"{package} is not installed (pip install {package})")
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        """Runtime versions, device, threads and flags: part of every cache key and manifest.

        The default names the runtime and its installed version, the CPU, its
        ISA flags, the usable cores and the spec's pinned threads; targets add
        what else changes a result (device, compiler flags, optimisation level).
        """
        package = self.runtime_package or self.runtime or self.kind
        return {
            "runtime": package,
            "version": package_version(package),
            **cpu_fingerprint(self.pinned_threads()),
        }

    @abstractmethod
    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        """Compile ``ir`` into files under ``workdir``; raise :class:`~hwnas.errors.CompileError`."""

    def load(self, artifact: Artifact, threads: int) -> Runner:
        """Load a compiled artifact into a :class:`Runner` using exactly ``threads`` threads.

        Called in the measurement worker, whose thread environment variables
        (``OMP_NUM_THREADS``, ``TVM_NUM_THREADS``, ...) are already set to
        ``threads``. The default runs the artifact's standalone loader (the
        one its ``run.py`` uses) and wraps the model in a
        :class:`~hwnas.measurement.standalone.StandaloneRunner`; override it
        only where measuring needs more than running does (a remote board).
        """
        from hwnas.measurement.standalone import load_standalone

        return load_standalone(artifact, threads)

    def hardware(self) -> dict[str, Any]:
        """The hardware this target runs on, as a manifest records it: ``device``, ``name``, ``arch``.

        The default reads the spec's device and the fingerprint's GPU or CPU
        model; targets whose device is elsewhere (a board) say what it is.
        """
        fp = self.fingerprint()
        return {
            "device": self.spec.device or "default",
            "name": fp.get("gpu") or fp.get("cpu"),
            "arch": fp.get("arch"),
        }

    # -- behaviour shared by every target, overridable ----------------------

    def artifact(
        self,
        ir: GraphIR,
        workdir: Path,
        entry: str,
        *,
        files: Sequence[str] = (),
        loader: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """The :class:`~hwnas.measurement.artifact.Artifact` describing files this target wrote for ``ir``.

        ``entry`` is the main file, ``files`` any others (all relative to
        ``workdir``); ``loader`` names the standalone loader that runs them
        (default: the target's kind; see docs/PLUGINS.md); ``details`` are
        facts worth keeping, and what the loader's ``load`` receives.
        """
        from hwnas import registry
        from hwnas.measurement.artifact import Artifact

        loader = loader or self.kind
        found = registry.standalone_loaders().get(loader)
        return Artifact.create(
            target=self.name,
            kind=self.kind,
            root=workdir,
            loader=loader,
            loader_module=found.module if found is not None else "",
            entry=entry,
            files=[entry, *files],
            inputs=ir.input_specs,
            outputs=ir.output_specs,
            ir_key=ir.key,
            fingerprint=self.fingerprint(),
            details=details,
        )

    def supports_precision(self, precision: str) -> Availability:
        """Can this target run subnets quantised to ``precision``, and if not, why."""
        if precision in self.precisions:
            return Availability.yes()
        return Availability.no(
            f"{precision} is not supported on target {self.name} (it runs {', '.join(self.precisions)}); "
            "int8 QDQ models run on onnxruntime and tvm"
        )

    def check_available(self) -> None:
        """Raise :class:`~hwnas.errors.TargetUnavailableError` saying why, if this target cannot run here."""
        availability = self.available()
        if not availability:
            raise TargetUnavailableError(
                f"target {self.name} is not available here: {availability.reason}",
                hint="see `hwnas targets` for what runs on this machine",
            )

    def device_from_spec(
        self, allowed: Sequence[str], default: str, *, what: str = "device"
    ) -> str:
        """The spec's device (after ``kind:``), or ``default``; one not in ``allowed`` is a :class:`ConfigError`."""
        device = self.spec.device or default
        if device not in allowed:
            raise ConfigError(
                f"target {self.spec}: unknown {what} {device!r}",
                hint=f"{self.kind} takes: {', '.join(allowed)}",
            )
        return device

    def int_option(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int | None:
        """An integer option of the spec, checked; ``default`` when absent."""
        text = self.spec.option(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"target {self.spec}: option {name}={text!r} is not an integer"
            ) from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            raise ConfigError(f"target {self.spec}: option {name}={value} must be {bound}")
        return value

    def pinned_threads(self) -> int | None:
        """The spec's ``threads`` option, if this kind has one and the spec sets it."""
        if "threads" not in self.options_help:
            return None
        return self.int_option("threads", minimum=1, maximum=MAX_THREADS)

    def threads(self, requested: int | None = None) -> int:
        """Threads the runtime uses: the spec's ``threads`` option, else ``requested``, else all usable cores."""
        return self.pinned_threads() or requested or usable_cores()

    def parallel_slots(self) -> int:
        """How many measurements may run at once (1 locally: parallel timing on one CPU lies)."""
        return 1

    def is_device_lost(self, exc: BaseException) -> bool:
        """Did ``exc`` (raised in the worker) come from losing the device, so another may retry?"""
        return False

    def fingerprint_hash(self) -> str:
        """A short stable hash of :meth:`fingerprint`, used in cache keys and directory names."""
        return stable_hash(self.fingerprint())

    def to_dict(self) -> dict[str, Any]:
        """The exported form of this target, for artifact and result metadata."""
        return {"spec": self.name, "kind": self.kind, "fingerprint": self.fingerprint()}

    def short_fingerprint(self) -> str:
        """One line of the fingerprint for listings."""
        fp = self.fingerprint()
        return ", ".join(f"{k}={v}" for k, v in fp.items() if v not in (None, "", [], {}))
