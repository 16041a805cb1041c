"""The :class:`Target` base class, target spec strings, and resolving a spec or preset to a target.

What every target shares (timing statistics, isolation, caching) lives in
:mod:`hwnas.measurement`; a target only adds what differs: compile and run.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.errors import ConfigError, UnknownTargetError

if TYPE_CHECKING:
    from hwnas.artifact import Artifact
    from hwnas.ir import GraphIR


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
            raise ConfigError("empty target spec", hint="write e.g. 'onnxruntime:cpu' or 'tvm:llvm'")
        head, _, query = text.partition("?")
        head, _, address = head.partition("@")
        kind, _, device = head.partition(":")
        if not kind:
            raise ConfigError(f"target spec {text!r} has no kind before ':'")
        try:
            options = tuple(urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
        except ValueError as exc:
            raise ConfigError(
                f"target spec {text!r}: options after '?' must be key=value pairs joined by '&'"
            ) from exc
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

    Subclasses set ``kind`` (the first part of a spec string) and implement
    ``available``, ``fingerprint``, ``compile`` and ``load``. Timing,
    statistics, isolation and caching are the core's, not the target's.
    """

    kind: ClassVar[str]
    description: ClassVar[str] = ""
    #: Options a spec may carry after ``?`` (others are rejected), with their meaning.
    options_help: ClassVar[dict[str, str]] = {}

    def __init__(self, spec: TargetSpec) -> None:
        unknown = [k for k, _ in spec.options if k not in self.options_help]
        if unknown:
            allowed = ", ".join(self.options_help) or "none"
            raise ConfigError(
                f"target {spec}: unknown option(s) {', '.join(unknown)}",
                hint=f"options of {self.kind!r}: {allowed}",
            )
        self.spec = spec

    @property
    def name(self) -> str:
        return str(self.spec)

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        """Spec strings ``hwnas targets`` shows for this kind (e.g. its CPU and GPU variants)."""
        return (cls.kind,)

    @abstractmethod
    def available(self) -> Availability:
        """Can this target run here? Must be cheap: no heavy imports, no compilation."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Runtime versions, device, threads and flags: part of every cache key and manifest."""

    @abstractmethod
    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        """Compile ``ir`` into files under ``workdir``; raise :class:`~hwnas.errors.CompileError`."""

    @abstractmethod
    def load(self, artifact: Artifact) -> Any:
        """Load a compiled artifact into a runner that the core times and checks."""

    def short_fingerprint(self) -> str:
        """One line of the fingerprint for listings."""
        fp = self.fingerprint()
        return ", ".join(f"{k}={v}" for k, v in fp.items() if v not in (None, "", [], {}))


@dataclass(frozen=True)
class Preset:
    """A named target preset standing for a spec string (like a TVM target tag)."""

    name: str
    spec: str
    description: str = ""
    plugin: str = field(default="", compare=False)


def resolve_target(text: str) -> Target:
    """Turn a spec string or preset name into a configured :class:`Target`."""
    from hwnas import registry

    presets = registry.target_presets()
    if text in presets:
        text = presets[text].spec
    spec = TargetSpec.parse(text)
    kinds = registry.target_classes()
    if spec.kind not in kinds:
        known = sorted(kinds) + sorted(presets)
        raise UnknownTargetError(
            f"unknown target {text!r}",
            hint=f"known target kinds and presets: {', '.join(known) or 'none'}; see `hwnas targets`",
        )
    return kinds[spec.kind](spec)
