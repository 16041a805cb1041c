"""The conformance kit: check that a target, strategy, predictor or supernet plugin keeps hwnas's contract.

``check_target("mykind:cpu")``, ``check_strategy(MyStrategy)``,
``check_predictor(MyPredictor)`` and ``check_supernet(MySupernet)`` raise
:class:`ConformanceError` saying what broke docs/PLUGINS.md's contract. The
pytest plugin (:mod:`hwnas.testing.pytest_plugin`, loaded through the
``pytest11`` entry point) adds fixtures. Importing this imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hwnas.testing.failures import ConformanceError, require

_LAZY = {
    "check_target": "hwnas.testing.targets",
    "TargetReport": "hwnas.testing.targets",
    "KIT_PROTOCOL": "hwnas.testing.targets",
    "check_strategy": "hwnas.testing.search",
    "check_predictor": "hwnas.testing.search",
    "check_supernet": "hwnas.testing.supernets",
    "KitModel": "hwnas.testing.models",
    "kit_models": "hwnas.testing.models",
    "conv_net": "hwnas.testing.models",
    "two_inputs_two_outputs": "hwnas.testing.models",
    "attention_block": "hwnas.testing.models",
}

if TYPE_CHECKING:
    from hwnas.testing.models import (
        KitModel,
        attention_block,
        conv_net,
        kit_models,
        two_inputs_two_outputs,
    )
    from hwnas.testing.search import check_predictor, check_strategy
    from hwnas.testing.supernets import check_supernet
    from hwnas.testing.targets import KIT_PROTOCOL, TargetReport, check_target


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["ConformanceError", "require", *_LAZY]
