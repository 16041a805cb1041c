"""An example third-party hwnas plugin: one target preset (a search strategy comes with it below).

Everything a plugin does goes through ``hwnas.hookimpl`` functions named after
the hooks in ``hwnas.hookspecs``.
"""

from __future__ import annotations

from collections.abc import Callable

from hwnas import hookimpl


@hookimpl
def hwnas_register_target_presets(register: Callable[..., None]) -> None:
    register(
        "example/ort-1thread",
        "onnxruntime:cpu?threads=1",
        "onnxruntime on the CPU pinned to one thread (from hwnas-example-plugin)",
    )
