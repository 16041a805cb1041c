"""hwnas: hardware-aware neural architecture search, from supernet to measured, compiled subnet.

Only light names are imported here so that ``hwnas --help`` and ``hwnas
targets`` stay fast; the search API is loaded on first use.
"""

from __future__ import annotations

import importlib.metadata as _md
from typing import Any

from hwnas.hookspecs import hookimpl

try:
    __version__ = _md.version("hwnas")
except _md.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# name -> "module:attribute", imported lazily on first access
_LAZY = {
    "search": "hwnas.search_core.api:search",
    "SearchSpace": "hwnas.model.search_space:SearchSpace",
    "Gene": "hwnas.model.search_space:Gene",
    "Subnet": "hwnas.model.search_space:Subnet",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")


__all__ = ["__version__", "hookimpl", *_LAZY]
