"""The conformance kit as a pytest plugin (entry point ``pytest11``): fixtures for testing hwnas plugins.

``hwnas_plugin_host`` loads the installed plugins afresh for one test,
``hwnas_kit_models`` builds the kit's models once, ``hwnas_worker_pool``
keeps measurement workers warm across a session. Loading it imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hwnas.measurement.isolation import WorkerPool
    from hwnas.plugin_manager import PluginHost


@pytest.fixture
def hwnas_plugin_host() -> Iterator[PluginHost]:
    """Built-in and installed plugins, loaded afresh and made the process's registry for one test."""
    from hwnas import registry
    from hwnas.plugin_manager import PluginHost

    host = PluginHost()
    registry.use_plugin_host(host)
    yield host
    registry.use_plugin_host(None)


@pytest.fixture(scope="session")
def hwnas_kit_models() -> list[Any]:
    """The kit's models (conv net, two inputs/two outputs, attention block), built once."""
    from hwnas.testing.models import kit_models

    return kit_models()


@pytest.fixture(scope="session")
def hwnas_worker_pool() -> Iterator[WorkerPool]:
    """Measurement workers shared by the session's checks (each spawn imports a runtime again)."""
    from hwnas.measurement.isolation import WorkerPool

    pool = WorkerPool()
    yield pool
    pool.close()


@pytest.fixture
def hwnas_check_target(
    hwnas_plugin_host: PluginHost,
    hwnas_kit_models: list[Any],
    hwnas_worker_pool: WorkerPool,
    tmp_path: Any,
) -> Any:
    """``hwnas_check_target(spec, **options)``: :func:`hwnas.testing.check_target` that skips, saying why, where the target cannot run."""
    from hwnas.errors import TargetUnavailableError
    from hwnas.testing.targets import check_target

    def check(target: Any, **options: Any) -> Any:
        options.setdefault("models", hwnas_kit_models)
        options.setdefault("pool", hwnas_worker_pool)
        options.setdefault("workdir", tmp_path / "kit")
        try:
            return check_target(target, **options)
        except TargetUnavailableError as exc:
            pytest.skip(str(exc))

    return check
