"""hwnas: hardware-aware neural architecture search, from supernet to measured, compiled subnet.

This module is the public facade: everything a user or a plugin needs is
importable from ``hwnas`` (``from hwnas import Target, Artifact, hookimpl``),
so the stage packages behind it (``hwnas.model``, ``hwnas.ir``,
``hwnas.measurement``, ``hwnas.search_core``, ``hwnas.deploy``) can move
without breaking anyone. Names load lazily on first use, so ``hwnas --help``
and ``hwnas plugins`` stay fast. docs/PLUGINS.md documents every name.
"""

from __future__ import annotations

import importlib
import importlib.metadata as _md
from typing import TYPE_CHECKING, Any

from hwnas.errors import (
    CompileError,
    ConfigError,
    DuplicateNameError,
    EvaluationError,
    HwnasError,
    MeasurementError,
    PluginError,
    StrategyError,
    TargetUnavailableError,
    UnknownNameError,
    UnknownTargetError,
)
from hwnas.hookspecs import hookimpl

try:
    __version__ = _md.version("hwnas")
except _md.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# public name -> the module that defines it, imported on first access
_LAZY: dict[str, str] = {
    # models and search spaces
    "Gene": "hwnas.model.search_space",
    "SearchSpace": "hwnas.model.search_space",
    "Subnet": "hwnas.model.search_space",
    "Supernet": "hwnas.model.supernet",
    "seeded": "hwnas.model.supernet",
    "PretrainedModel": "hwnas.model.pretrained",
    # graph IR
    "GraphIR": "hwnas.ir",
    "OpNode": "hwnas.ir",
    "TensorSpec": "hwnas.ir",
    # targets and measurement
    "Target": "hwnas.measurement.target",
    "TargetSpec": "hwnas.measurement.target",
    "Runner": "hwnas.measurement.runner",
    "Availability": "hwnas.measurement.target",
    "StandaloneRunner": "hwnas.measurement.standalone",
    "Artifact": "hwnas.measurement.artifact",
    "ArtifactFile": "hwnas.measurement.artifact",
    "MeasurementProtocol": "hwnas.measurement.protocol",
    "Measurement": "hwnas.measurement.results",
    "MeasurementFailure": "hwnas.measurement.results",
    "Measurer": "hwnas.measurement.measurer",
    "measure": "hwnas.measurement.measurer",
    "measure_many": "hwnas.measurement.measurer",
    "resolve_target": "hwnas.measurement.resolve",
    "default_cache_dir": "hwnas.measurement.cache",
    # host facts for available() and fingerprint()
    "cpu_info": "hwnas.measurement.host",
    "cpu_flags": "hwnas.measurement.host",
    "cpu_fingerprint": "hwnas.measurement.host",
    "gpu_fingerprint": "hwnas.measurement.host",
    "has_nvidia_gpu": "hwnas.measurement.host",
    "cuda_compute_capability": "hwnas.measurement.host",
    "module_available": "hwnas.measurement.host",
    "package_version": "hwnas.measurement.host",
    "usable_cores": "hwnas.measurement.host",
    "stable_hash": "hwnas.digests",
    "sha256_file": "hwnas.digests",
    # search
    "search": "hwnas.search_core.api",
    "SearchResult": "hwnas.search_core.api",
    "write_report": "hwnas.search_core.report_page",
    "Evaluation": "hwnas.search_core.evaluator",
    "Metrics": "hwnas.search_core.evaluator",
    "ObjectiveProvider": "hwnas.search_core.evaluator",
    "Objective": "hwnas.search_core.objectives",
    "Constraint": "hwnas.search_core.objectives",
    "pareto_mask": "hwnas.search_core.objectives",
    "constrained_ranks": "hwnas.search_core.objectives",
    "crowding_distance": "hwnas.search_core.objectives",
    "hypervolume": "hwnas.search_core.objectives",
    "normalisation_bounds": "hwnas.search_core.objectives",
    "BUILTIN_OBJECTIVES": "hwnas.search_core.objectives",
    "FreeStatistics": "hwnas.search_core.free_statistics",
    "TableStatistics": "hwnas.search_core.free_statistics",
    "Strategy": "hwnas.search_core.strategy",
    "StrategySettings": "hwnas.search_core.strategy",
    "Predictor": "hwnas.search_core.predictor",
    "PredictorSettings": "hwnas.search_core.predictor",
    "PredictionQuality": "hwnas.search_core.predictor",
    "predictor_class": "hwnas.registry",
}

_ERRORS = (
    "HwnasError",
    "ConfigError",
    "PluginError",
    "DuplicateNameError",
    "UnknownNameError",
    "UnknownTargetError",
    "TargetUnavailableError",
    "CompileError",
    "MeasurementError",
    "EvaluationError",
    "StrategyError",
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from hwnas.digests import sha256_file, stable_hash
    from hwnas.ir import GraphIR, OpNode, TensorSpec
    from hwnas.measurement.artifact import Artifact, ArtifactFile
    from hwnas.measurement.cache import default_cache_dir
    from hwnas.measurement.host import (
        cpu_fingerprint,
        cpu_flags,
        cpu_info,
        cuda_compute_capability,
        gpu_fingerprint,
        has_nvidia_gpu,
        module_available,
        package_version,
        usable_cores,
    )
    from hwnas.measurement.measurer import Measurer, measure, measure_many
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.resolve import resolve_target
    from hwnas.measurement.results import Measurement, MeasurementFailure
    from hwnas.measurement.runner import Runner
    from hwnas.measurement.standalone import StandaloneRunner
    from hwnas.measurement.target import Availability, Target, TargetSpec
    from hwnas.model.pretrained import PretrainedModel
    from hwnas.model.search_space import Gene, SearchSpace, Subnet
    from hwnas.model.supernet import Supernet, seeded
    from hwnas.registry import predictor_class
    from hwnas.search_core.api import SearchResult, search
    from hwnas.search_core.evaluator import Evaluation, Metrics, ObjectiveProvider
    from hwnas.search_core.free_statistics import FreeStatistics, TableStatistics
    from hwnas.search_core.objectives import (
        BUILTIN_OBJECTIVES,
        Constraint,
        Objective,
        constrained_ranks,
        crowding_distance,
        hypervolume,
        normalisation_bounds,
        pareto_mask,
    )
    from hwnas.search_core.predictor import PredictionQuality, Predictor, PredictorSettings
    from hwnas.search_core.report_page import write_report
    from hwnas.search_core.strategy import Strategy, StrategySettings


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["__version__", "hookimpl", *_ERRORS, *_LAZY]
