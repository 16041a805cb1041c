"""Shared pytest fixtures: a fresh plugin host per test, measurement workers per module, and hardware markers' skip reasons."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwnas import registry
from hwnas.measurement.isolation import WorkerPool
from hwnas.plugin_manager import PluginHost

# The session-scoped ``edge_farm`` fixture (emulated aarch64 boards) lives in tests/edge_farm.py,
# ``two_small_runs`` (finished search runs for the report tests) in tests/report_runs.py.
pytest_plugins = ["edge_farm", "report_runs"]


@pytest.fixture
def plugin_host() -> Iterator[PluginHost]:
    """A freshly loaded plugin host (built-ins + entry points), installed as the process's host."""
    host = PluginHost()
    registry.use_plugin_host(host)
    yield host
    registry.use_plugin_host(None)


@pytest.fixture
def builtin_plugin_host() -> Iterator[PluginHost]:
    """A fresh plugin host with only the built-in plugins (third-party autoload off)."""
    host = PluginHost(autoload=False)
    registry.use_plugin_host(host)
    yield host
    registry.use_plugin_host(None)


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    """Measurement worker processes shared by a test module's measurers, closed after it."""
    workers = WorkerPool()
    yield workers
    workers.close()


def _has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _has_nvidia_gpu():
        skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
