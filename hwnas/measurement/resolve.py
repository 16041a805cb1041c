"""Turning a target spec string or preset name into a configured :class:`~hwnas.measurement.target.Target`.

The registry knows which target kinds and presets exist; the Target class
knows how to parse and check its own options. This module joins the two.
"""

from __future__ import annotations

from hwnas import registry
from hwnas.errors import UnknownTargetError
from hwnas.measurement.target import Target, TargetSpec


def resolve_target(text: str) -> Target:
    """Turn a spec string or preset name into a configured :class:`Target`."""

    presets = registry.target_presets()
    preset = presets.get(text.strip())
    if preset is not None:
        text = preset.spec
    spec = TargetSpec.parse(text)
    kinds = registry.target_classes()
    if spec.kind not in kinds:
        known = sorted(kinds) + sorted(presets)
        raise UnknownTargetError(
            f"unknown target {text!r}",
            hint=f"known target kinds and presets: {', '.join(known) or 'none'}; see `hwnas targets`",
        )
    target = kinds[spec.kind](spec)
    target.preset = preset.name if preset is not None else None
    return target
