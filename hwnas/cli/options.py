"""Options several commands share, parsed in one place: supernet selection, ``--set`` pairs, target specs.

Every command that takes a supernet loads it through :func:`load_model` (so a
bad checkpoint gives the same clean error everywhere), every ``NAME=VALUE``
option goes through :func:`parse_pairs`, and every target list through
:func:`resolve_available_targets`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hwnas.errors import ConfigError, TargetUnavailableError, UnknownTargetError

if TYPE_CHECKING:
    from hwnas.measurement.target import Target
    from hwnas.model.loader import LoadedSupernet


def parse_pairs(
    pairs: Sequence[str],
    option: str = "--set",
    example: str = "name=value",
    placeholder: str = "NAME",
) -> dict[str, str]:
    """``NAME=VALUE`` texts as a dict (values stay text); a malformed or repeated name is a :class:`ConfigError`."""
    parsed: dict[str, str] = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(
                f"{option} {item!r}: expected {placeholder}=VALUE", hint=f"e.g. {option} {example}"
            )
        if name in parsed:
            raise ConfigError(
                f"{option} {name} is given twice ({parsed[name]!r} and {value.strip()!r})",
                hint="give each setting once",
            )
        parsed[name] = value.strip()
    return parsed


def supernet_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--preset``, repeatable ``--set FIELD=VALUE`` and ``--checkpoint`` for a command that names a supernet."""
    command = click.option(
        "--checkpoint",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Trained supernet weights (from `hwnas train`); it fixes the architecture.",
    )(command)
    command = click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override a supernet setting (repeatable), e.g. --set num_classes=100 --set resolutions=32,48.",
    )(command)
    return click.option(
        "--preset",
        default=None,
        help="Supernet preset, e.g. tiny or full (default: the supernet's own).",
    )(command)


def tolerance_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--rtol``/``--atol``: how close outputs must be to the reference (default: each target's own)."""
    command = click.option(
        "--atol",
        type=float,
        default=None,
        help="Absolute output tolerance (default: the target's, 1e-4 for fp32 targets).",
    )(command)
    return click.option(
        "--rtol",
        type=float,
        default=None,
        help="Relative output tolerance (default: the target's, 1e-3 for fp32 targets).",
    )(command)


def load_model(
    supernet: str | None,
    preset: str | None = None,
    settings: Sequence[str] = (),
    checkpoint: Path | None = None,
) -> LoadedSupernet:
    """The supernet a command's options name: a checkpoint, a registered name (untrained), or the embedded default."""
    from hwnas.model.loader import load_supernet

    return load_supernet(
        supernet,
        preset=preset,
        overrides=parse_pairs(settings, example="num_classes=100", placeholder="FIELD"),
        checkpoint=checkpoint,
    )


def resolve_available_targets(specs: Sequence[str]) -> list[Target]:
    """Every requested target, configured and available here; errors list what is available."""
    from hwnas.cli.targets_cmd import target_rows
    from hwnas.measurement.resolve import resolve_target

    def available_here() -> str:
        rows = target_rows()
        names = [r["target"] for r in rows if r.get("available")]
        names += [r["target"] for r in rows if "preset_for" in r]
        return ", ".join(names) or "none"

    targets = []
    for spec in specs:
        try:
            target = resolve_target(spec)
        except UnknownTargetError as exc:
            raise UnknownTargetError(
                exc.message, hint=f"available here: {available_here()}"
            ) from None
        availability = target.available()
        if not availability:
            raise TargetUnavailableError(
                f"target {spec} cannot run here: {availability.reason}",
                hint=f"available here: {available_here()} (see `hwnas targets`)",
            )
        targets.append(target)
    return targets
