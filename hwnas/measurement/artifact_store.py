"""Where compiled artifacts live and how they get there: one folder per (target fingerprint, IR key), reused.

A compile writes into a private folder that is renamed into place only when
complete, so a crash or a concurrent compile never leaves half an artifact.
Given a worker, the target's compile runs in that process under a timeout: a
compiler that segfaults or hangs fails this one model, not the caller.
"""

from __future__ import annotations

import dataclasses
import math
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
    from hwnas.measurement.isolation import Worker
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

    def compile(
        self, ir: GraphIR, worker: Worker | None = None, timeout_s: float = math.inf
    ) -> Artifact:
        """Compile ``ir`` (or reuse the artifact compiled before for the same target fingerprint).

        With ``worker``, the target compiles in that process and must finish
        within ``timeout_s``; a crash or a hang raises :class:`CompileError`
        saying which. Without one it compiles here.
        """
        found = self.existing(ir)
        if found is not None:
            return found
        root = self.path(ir)
        root.parent.mkdir(parents=True, exist_ok=True)
        sweep(root.parent, ".")  # compile folders of processes killed mid-compile
        tmp = Path(tempfile.mkdtemp(prefix=f".{ir.key[:16]}-{pid_tag()}-", dir=root.parent))
        try:
            start = time.perf_counter()
            with _COMPILE_LOCK:
                if worker is not None and not self._sendable(ir):
                    worker = None
                if worker is None:
                    artifact = compile_here(self.target, ir, tmp)
                else:
                    artifact = self._compile_in(worker, ir, tmp, timeout_s)
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

    def _sendable(self, ir: GraphIR) -> bool:
        """Whether ``ir`` can travel to the compile worker; if not (a torch module of a class
        defined in a function or in ``__main__``), compile here and say so once.

        A Target that does not pickle is the plugin's error and is not excused here: the
        worker call then fails with the contract's message.
        """
        module = getattr(ir, "module", None)
        if module is None:
            return True
        local = [
            type(m)
            for m in module.modules()
            if type(m).__module__ == "__main__" or "<locals>" in type(m).__qualname__
        ]
        if not local:
            return True
        cls = local[0]
        from hwnas.notices import log_once

        log_once(
            f"the torch module of IR {ir.name!r} is an instance of {cls.__module__}."
            f"{cls.__qualname__}, which another process cannot import, so it is compiled in "
            "this process, without the compile worker's crash and hang isolation; define the "
            "class at module level in an importable file to get it",
            logger="hwnas.measurement",
        )
        return False

    def _compile_in(self, worker: Worker, ir: GraphIR, workdir: Path, timeout_s: float) -> Artifact:
        outcome = worker.call(compile_in_worker, (self.target, ir, str(workdir)), timeout=timeout_s)
        if outcome.ok and isinstance(outcome.value, Artifact):
            return outcome.value
        if outcome.ok:  # the target's own clean error, raised again here with its hint
            message, hint = outcome.value
            raise CompileError(message, hint=hint)
        what = {"crash": "crashed", "timeout": "did not finish"}.get(outcome.failure, "failed")
        raise CompileError(
            f"target {self.target.label}: compiling {ir.key[:12]} {what} in its isolated "
            f"worker: {outcome.reason}",
            hint=(
                "the search goes on without this model; raise the protocol's compile_timeout_s "
                "if the compiler only needs longer"
                if outcome.failure == "timeout"
                else "the search goes on without this model; the target's compiler is at fault"
            ),
        )


def compile_here(target: Target, ir: GraphIR, workdir: Path) -> Artifact:
    """``target.compile(ir, workdir)``, any exception but hwnas's own turned into a :class:`CompileError`."""
    try:
        return target.compile(ir, workdir)
    except HwnasError:
        raise
    except Exception as exc:
        raise CompileError(
            f"target {target.label} failed to compile {ir.key[:12]}: {type(exc).__name__}: {exc}"
        ) from exc


def compile_in_worker(
    target: Target, ir: GraphIR, workdir: str
) -> Artifact | tuple[str, str | None]:
    """The compile worker's job: the artifact, or a clean error's ``(message, hint)``."""
    try:
        return compile_here(target, ir, Path(workdir))
    except HwnasError as exc:
        return exc.message, exc.hint
