"""hwnas-openvino: the ``openvino`` target (OpenVINO on the CPU) and its ``openvino-ir`` standalone loader.

A third-party plugin written only against docs/PLUGINS.md: hwnas finds it
through the ``hwnas`` entry point in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable

from hwnas import hookimpl
from hwnas_openvino.target import LOADER, OpenVinoTarget


@hookimpl
def hwnas_register_targets(register: Callable[..., None]) -> None:
    register(OpenVinoTarget)


@hookimpl
def hwnas_register_loaders(register: Callable[..., None]) -> None:
    # the module run.py imports: numpy and openvino only
    register(LOADER, "hwnas_openvino.openvino_ir")
