"""Where compiled artifacts live and how they get there: one folder per (target fingerprint, IR key), reused.

A compile writes into a private folder that is renamed into place only when
complete, so a crash or a concurrent compile never leaves half an artifact.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hwnas.errors import CompileError, ConfigError, HwnasError
from hwnas.leftovers import pid_tag, sweep
from hwnas.measurement.artifact import MANIFEST, Artifact

if TYPE_CHECKING:
    from hwnas.ir import GraphIR
    from hwnas.measurement.target import Target

#: One compile at a time per process: torch.export's decompositions and TVM's compile
#: (e.g. ``te.TagScope``) keep global state, so measure_many's threads (one per remote
#: device) would corrupt each other's compiles. Timing on the devices still overlaps.
_COMPILE_LOCK = threading.Lock()


class ArtifactStore:
    """Compiled artifacts of one target under ``root/<kind>-<fingerprint hash>/<IR key>``."""

    def __init__(self, root: Path, target: Target, fingerprint_hash: str) -> None:
        self.root = root
        self.target = target
        self.fingerprint_hash = fingerprint_hash

    def path(self, ir: GraphIR) -> Path:
        return self.root / f"{self.target.kind}-{self.fingerprint_hash}" / ir.key

    def existing(self, ir: GraphIR) -> Artifact | None:
        """The artifact compiled before for ``ir``, if it is still intact; a damaged one is removed."""
        root = self.path(ir)
        if (root / MANIFEST).is_file():
            try:
                artifact = Artifact.load(root)
                artifact.verify()
                return artifact
            except ConfigError:
                shutil.rmtree(root, ignore_errors=True)
        elif root.exists():  # left by a compile that died before writing its manifest
            shutil.rmtree(root, ignore_errors=True)
        return None

    def compile(self, ir: GraphIR) -> Artifact:
        """Compile ``ir`` (or reuse the artifact compiled before for the same target fingerprint)."""
        found = self.existing(ir)
        if found is not None:
            return found
        root = self.path(ir)
        root.parent.mkdir(parents=True, exist_ok=True)
        sweep(root.parent, ".")  # compile folders of processes killed mid-compile
        tmp = Path(tempfile.mkdtemp(prefix=f".{ir.key[:16]}-{pid_tag()}-", dir=root.parent))
        try:
            start = time.perf_counter()
            try:
                with _COMPILE_LOCK:
                    artifact = self.target.compile(ir, tmp)
            except HwnasError:
                raise
            except Exception as exc:
                raise CompileError(
                    f"target {self.target.label} failed to compile {ir.key[:12]}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            artifact = dataclasses.replace(
                artifact,
                root=str(root),
                compile_s=artifact.compile_s or time.perf_counter() - start,
            )
            artifact.save(tmp)
            try:
                tmp.rename(root)
            except OSError:  # another process finished the same artifact first
                return Artifact.load(root)
            return artifact
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
