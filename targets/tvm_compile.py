"""Compiling a GraphIR with TVM Relax, shared by the ``tvm`` and ``tvm-rpc`` targets.

Inference passes (batch norm folded into convs), optional MetaSchedule tuning
against a database shared across models, ``tvm.compile`` and export to a
shared library (cross-compiled for remote boards). Running is :mod:`hwnas_targets.tvm_relax_vm`'s.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import CompileError, usable_cores

if TYPE_CHECKING:
    from hwnas import Artifact, GraphIR, Target

LIBRARY = "model.so"
MS_LOGGER = "tvm.s_tir.meta_schedule"
LOADER = "tvm-relax-vm"
#: Without a recorded budget, a task counts as tuned once the database holds this share of its trials.
TUNED_SHARE = 0.5


def host_cpu() -> str:
    """LLVM's name for this machine's CPU (``znver3``, ``cortex-a72``...): what ``-mcpu`` should say."""
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


def cuda_arch(compute_capability: str | None) -> str | None:
    """``"9.0"`` -> ``"sm_90"``."""
    if not compute_capability:
        return None
    major, _, minor = compute_capability.partition(".")
    return f"sm_{major}{minor or '0'}"


@dataclass(frozen=True)
class Tuning:
    """MetaSchedule settings: ``trials`` per task; records kept in ``work_dir`` across models.

    ``rpc`` (``host``, ``port``, ``key``) measures candidates on a remote
    board through a tracker instead of locally; ``cross_compiler`` then links them.
    """

    trials: int
    work_dir: Path
    rpc: tuple[str, int, str] | None = None
    cross_compiler: str | None = None
    session_timeout_s: float = 120.0


@dataclass(frozen=True)
class TuningReport:
    """What tuning one model did: tasks found, tuned now, reused from the database, time spent."""

    tasks: int
    tuned: int
    reused: int
    trials: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "tuned": self.tuned,
            "reused": self.reused,
            "trials": self.trials,
            "seconds": round(self.seconds, 3),
        }


def inference_passes() -> Any:
    """Fold batch norm into the preceding conv, decompose the rest, fold constants.

    The best untuned setting seen on CPU; it also leaves fewer, larger kernels to tune.
    """
    import tvm
    from tvm import relax

    return tvm.transform.Sequential(
        [
            relax.transform.FoldBatchnormToConv2D(),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
        ]
    )


def fuse_passes() -> Any:
    """Legalize to TIR and fuse, as the default pipeline does: what MetaSchedule extracts tasks from."""
    import tvm
    from tvm import relax

    return tvm.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )


@contextmanager
def _locked(work_dir: Path) -> Iterator[None]:
    """One tuner per database at a time (MetaSchedule's JSON files are not safe to share)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def search_strategy(trials: int) -> Any:
    """Evolutionary search sized to the budget: MetaSchedule's default (512 candidates, 4
    generations per round) costs ~40 s of CPU per task here, however few trials are measured."""
    from tvm.s_tir import meta_schedule as ms

    population = min(512, max(64, 16 * trials))
    return ms.search_strategy.EvolutionarySearch(
        population_size=population,
        init_min_unmeasured=min(50, population // 2),
        genetic_num_iters=2 if trials < 32 else 4,
    )


def import_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (MetaSchedule's schedule rules need it) in seconds, not minutes.

    Each of its hundreds of TVMScript functions calls ``inspect.stack()``,
    which looks up the module of every frame by scanning ``sys.modules`` when
    the frame's file is not a module (``<ast>``): over 100 s on this machine.
    TVMScript only reads each frame's object, file, line and source line, so
    for this one import ``inspect.stack`` is replaced by a walk that reads
    source lines straight from :mod:`linecache`.
    """
    import inspect
    import linecache
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return

    def frame_infos(context: int = 1) -> list[inspect.FrameInfo]:
        frame = sys._getframe(1)
        infos = []
        while frame is not None:
            code = frame.f_code
            line = linecache.getline(code.co_filename, frame.f_lineno) if context > 0 else ""
            infos.append(
                inspect.FrameInfo(
                    frame,
                    code.co_filename,
                    frame.f_lineno,
                    code.co_name,
                    [line] if line else None,
                    0 if line else None,
                )
            )
            frame = frame.f_back
        return infos

    original = inspect.stack
    inspect.stack = frame_infos  # type: ignore[assignment]
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.stack = original


def build_candidate(mod: Any, target: Any) -> Any:
    """MetaSchedule's default candidate build, minus its ``import tvm.s_tir.tensor_intrin``.

    A tensorised candidate already carries its intrinsic's body, so building
    it does not need the registry (see :func:`import_tensor_intrinsics`).
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def export_candidate(mod: Any, cross_compiler: str | None = None) -> str:
    """Write a built candidate where the runner can fetch it: a tar locally, a shared library for a board."""
    import tempfile

    from tvm.support import cc
    from tvm.support.tar import tar

    directory = tempfile.mkdtemp(prefix="hwnas-ms-")
    if cross_compiler:
        path = os.path.join(directory, "candidate.so")
        mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    else:
        path = os.path.join(directory, "candidate." + tar.output_format)
        mod.export_library(path, fcompile=tar)
    return path


def in_process_builder(cross_compiler: str | None) -> Any:
    """A MetaSchedule builder that builds candidates in this process, one after the other.

    ``LocalBuilder`` starts a fresh process pool for every batch, and each
    process imports TVM again: about 6 s per task here, longer than building
    a small budget's candidates. The final model is compiled in this process
    by the same LLVM code generator anyway.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for item in build_inputs:
                try:
                    path = export_candidate(build_candidate(item.mod, item.target), cross_compiler)
                    results.append(ms.builder.BuilderResult(path, None))
                except (
                    Exception
                ) as exc:  # a candidate that does not build is an error result, not a crash
                    results.append(ms.builder.BuilderResult(None, f"{type(exc).__name__}: {exc}"))
            return results

    return InProcessBuilder()


def _builder_and_runner(tuning: Tuning) -> tuple[Any, Any]:
    from tvm.s_tir import meta_schedule as ms

    builder = in_process_builder(tuning.cross_compiler)
    if tuning.rpc is None:
        return builder, "local"
    host, port, key = tuning.rpc
    runner = ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(
            tracker_host=host,
            tracker_port=port,
            tracker_key=key,
            session_timeout_sec=int(tuning.session_timeout_s),
        )
    )
    return builder, runner


@contextmanager
def _meta_schedule_logging() -> Iterator[None]:
    """Let MetaSchedule set up its loggers (files under ``work_dir/logs``) without flooding the console.

    It sizes its console handler from its logger's level, so WARNING keeps the
    per-round tables off the CLI. It also names every handler already on that
    logger in a ``logging.config.dictConfig`` and fails on unnamed ones (such
    as pytest's capture handlers): those are set aside while it configures.
    """
    logger = logging.getLogger(MS_LOGGER)
    logger.setLevel(logging.WARNING)
    unnamed = [h for h in logger.handlers if not h.get_name()]
    for handler in unnamed:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in unnamed:
            logger.addHandler(handler)


def tune(mod: Any, target: Any, tuning: Tuning) -> TuningReport:
    """Tune the fused module's tasks that the database has not seen with this budget; others are reused."""
    from tvm.s_tir import meta_schedule as ms

    start = time.perf_counter()
    import_tensor_intrinsics()
    with _locked(tuning.work_dir):
        database = ms.database.JSONDatabase(work_dir=str(tuning.work_dir))
        budgets = _TunedBudgets(tuning.work_dir)
        tasks = ms.relax_integration.extract_tasks(mod, target)
        todo = [t for t in tasks if not budgets.covers(database, t.dispatched[0], tuning.trials)]
        if todo:
            with _meta_schedule_logging():
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    todo,
                    str(tuning.work_dir),
                    strategy=search_strategy(tuning.trials),
                    num_threads=usable_cores(),
                )
            builder, runner = _builder_and_runner(tuning)
            ms.tune.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=str(tuning.work_dir),
                max_trials_global=tuning.trials * len(contexts),
                max_trials_per_task=tuning.trials,
                num_trials_per_iter=min(64, tuning.trials),
                builder=builder,
                runner=runner,
                database=database,
            )
            budgets.record([t.dispatched[0] for t in todo], tuning.trials)
    return TuningReport(
        tasks=len(tasks),
        tuned=len(todo),
        reused=len(tasks) - len(todo),
        trials=tuning.trials * len(todo),
        seconds=time.perf_counter() - start,
    )


class _TunedBudgets:
    """``tuned_budgets.json`` next to the database: the largest trial budget each workload was tuned with.

    MetaSchedule stops early on tasks with small search spaces, so the number
    of records alone cannot say whether a task was tuned with a given budget.
    """

    FILE = "tuned_budgets.json"

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / self.FILE
        try:
            self.budgets: dict[str, int] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.budgets = {}

    @staticmethod
    def _key(mod: Any) -> str:
        import tvm_ffi

        return str(tvm_ffi.structural_hash(mod))

    def covers(self, database: Any, mod: Any, trials: int) -> bool:
        if not database.has_workload(mod):
            return False
        if self.budgets.get(self._key(mod), 0) >= trials:
            return True
        # records from before this file existed: count them
        workload = database.commit_workload(mod)  # the stored one; adds nothing
        need = max(1, int(trials * TUNED_SHARE))
        return len(database.get_top_k(workload, need)) >= need

    def record(self, mods: list[Any], trials: int) -> None:
        for mod in mods:
            key = self._key(mod)
            self.budgets[key] = max(trials, self.budgets.get(key, 0))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.budgets, indent=1, sort_keys=True))
        tmp.replace(self.path)


def build(
    ir: GraphIR,
    target_dict: dict[str, Any],
    out: Path,
    *,
    tuning: Tuning | None = None,
    cross_compiler: str | None = None,
) -> dict[str, Any]:
    """Import, optimise, (tune,) compile and export ``ir`` to ``out``; returns facts for the artifact."""
    import tvm
    from tvm import relax

    details: dict[str, Any] = {"tvm_target": target_dict, "passes": "fold-batchnorm"}
    try:
        target = tvm.target.Target(target_dict)
        mod = inference_passes()(ir.to_relax())
        if tuning is not None and tuning.trials > 0:
            with target:
                mod = fuse_passes()(mod)
            report = tune(mod, target, tuning)
            with target:
                mod = relax.transform.MetaScheduleApplyDatabase(str(tuning.work_dir))(mod)
            details["tuning"] = {
                **report.to_dict(),
                "trials_per_task": tuning.trials,
                "database": str(tuning.work_dir),
            }
        executable = tvm.compile(mod, target)
        if cross_compiler:
            from tvm.support import cc

            executable.export_library(str(out), fcompile=cc.cross_compiler(cross_compiler))
        else:
            executable.export_library(str(out))
    except CompileError:
        raise
    except Exception as exc:  # TVM raises TVMError, InternalError, ValueError... from deep inside
        first = str(exc).strip().splitlines()
        raise CompileError(
            f"TVM failed to compile IR {ir.name!r} for {target_dict.get('kind')}: "
            f"{type(exc).__name__}: {first[0] if first else ''}"
        ) from exc
    return details


def library_artifact(
    target: Target, ir: GraphIR, workdir: Path, details: Mapping[str, Any]
) -> Artifact:
    """The :class:`~hwnas.measurement.artifact.Artifact` of a Relax library that :func:`build` wrote for ``target``."""
    return target.artifact(ir, workdir, LIBRARY, loader=LOADER, details=details)
