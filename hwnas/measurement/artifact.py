"""The :class:`Artifact`: what a target's ``compile`` leaves on disk, and how to load it again.

Plain data (files with their sha256, loader name, target fingerprint, tensor
specs) saved as ``artifact.json`` next to the files; loading is the target's job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.digests import sha256_file
from hwnas.errors import ConfigError
from hwnas.ir.nodes import TensorSpec

MANIFEST = "artifact.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArtifactFile:
    """One file of an artifact: its path relative to the artifact directory, size and sha256."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Artifact:
    """A compiled model for one target: files in ``root``, the loader that reads them, and what it is.

    ``loader`` names how the files are loaded (``"onnxruntime-session"``,
    ``"tvm-relax-vm"``, ...) and ``loader_module`` is the standalone loader
    module registered under that name when it was compiled ("" if none was);
    ``entry`` is the main file. ``fingerprint`` is
    the compiling target's fingerprint; ``details`` holds target-specific
    facts worth keeping (tuning trials, passes, the TVM target dict).
    """

    target: str
    kind: str
    root: str
    loader: str
    entry: str
    files: tuple[ArtifactFile, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ir_key: str
    fingerprint: Mapping[str, Any] = field(default_factory=dict, hash=False)
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    compile_s: float = field(default=0.0, compare=False)
    loader_module: str = ""

    @classmethod
    def create(
        cls,
        *,
        target: str,
        kind: str,
        root: Path,
        loader: str,
        entry: str,
        files: Iterable[str],
        inputs: Iterable[TensorSpec],
        outputs: Iterable[TensorSpec],
        ir_key: str,
        fingerprint: Mapping[str, Any],
        details: Mapping[str, Any] | None = None,
        compile_s: float = 0.0,
        loader_module: str = "",
    ) -> Artifact:
        """Hash the named files under ``root`` and describe them; ``entry`` must be one of them."""
        names = list(dict.fromkeys(files))
        if entry not in names:
            names.insert(0, entry)
        hashed = []
        for name in names:
            path = root / name
            if not path.is_file():
                raise ConfigError(f"artifact file {path} was not written by the {kind} target")
            hashed.append(ArtifactFile(name, sha256_file(path), path.stat().st_size))
        return cls(
            target=target,
            kind=kind,
            root=str(root),
            loader=loader,
            entry=entry,
            files=tuple(hashed),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            ir_key=ir_key,
            fingerprint=dict(fingerprint),
            details=dict(details or {}),
            compile_s=compile_s,
            loader_module=loader_module,
        )

    def path(self, name: str | None = None) -> Path:
        """Absolute path of one of the files (the entry file by default)."""
        return Path(self.root) / (name or self.entry)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def verify(self) -> None:
        """Check that every file is present with its recorded sha256; raise :class:`ConfigError` if not."""
        for f in self.files:
            path = Path(self.root) / f.path
            if not path.is_file():
                raise ConfigError(f"artifact {self.root}: file {f.path} is missing")
            if f.size != path.stat().st_size or sha256_file(path) != f.sha256:
                raise ConfigError(
                    f"artifact {self.root}: file {f.path} changed since it was compiled",
                    hint="recompile it (delete the artifact directory)",
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "target": self.target,
            "kind": self.kind,
            "loader": self.loader,
            "loader_module": self.loader_module,
            "entry": self.entry,
            "files": [f.to_dict() for f in self.files],
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ir_key": self.ir_key,
            "fingerprint": dict(self.fingerprint),
            "details": dict(self.details),
            "compile_s": self.compile_s,
        }

    def save(self, directory: str | Path | None = None) -> Path:
        """Write ``artifact.json`` into ``directory`` (default: the artifact's own); returns its path."""
        path = Path(directory or self.root) / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, root: str | Path) -> Artifact:
        """Read ``artifact.json`` from a directory (the files are not checked; see :meth:`verify`)."""
        root = Path(root)
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{root} is not a compiled artifact (no {MANIFEST})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if data.get("format") != FORMAT_VERSION:
            raise ConfigError(
                f"{path}: artifact format {data.get('format')!r} is not {FORMAT_VERSION}"
            )
        return cls(
            target=data["target"],
            kind=data["kind"],
            root=str(root),
            loader=data["loader"],
            loader_module=str(data.get("loader_module", "")),
            entry=data["entry"],
            files=tuple(ArtifactFile(**f) for f in data["files"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            ir_key=data["ir_key"],
            fingerprint=data.get("fingerprint", {}),
            details=data.get("details", {}),
            compile_s=float(data.get("compile_s", 0.0)),
        )
