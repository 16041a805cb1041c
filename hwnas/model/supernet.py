"""The :class:`Supernet` base class: a weight-sharing network's search space, elastic module, and subnet extraction.

Built-in supernets are plugins (``hwnas_plugins.supernets``); torch is
imported by their methods, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.errors import ConfigError, UnknownNameError
from hwnas.model.search_space import SearchSpace, Subnet

if TYPE_CHECKING:
    import torch

    from hwnas.ir.nodes import TensorSpec
    from hwnas.model.pretrained import PretrainedModel


class Supernet(ABC):
    """A weight-sharing supernet: a :class:`SearchSpace`, an elastic torch module, and static subnets cut from it.

    Subclasses set ``name``, ``settings_class`` (a frozen dataclass of
    architecture arguments) and ``presets`` (named settings), and implement
    :meth:`build_space`, :meth:`build`, :meth:`set_active`, :meth:`extract` and
    :meth:`input_spec`. The elastic module's ``state_dict`` is the supernet's
    checkpoint; :mod:`hwnas.model.checkpoint` stores the settings with it
    so a checkpoint rebuilds the same architecture.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: torch seed :meth:`build` initialises weights with, so untrained supernets (and IR keys) are reproducible
    init_seed: ClassVar[int] = 0
    settings_class: ClassVar[type[Any]]
    presets: ClassVar[Mapping[str, Any]]
    default_preset: ClassVar[str] = "tiny"

    def __init__(self, settings: Any | None = None, *, preset: str | None = None) -> None:
        if settings is None:
            preset = preset or self.default_preset
            settings = self.preset_settings(preset)
        self.settings = settings
        self.preset = preset
        self.validate_settings(settings)

    # -- construction from arguments -----------------------------------------------

    @classmethod
    def preset_settings(cls, preset: str) -> Any:
        """The settings of a named preset; an unknown name raises :class:`UnknownNameError`."""
        if preset not in cls.presets:
            raise UnknownNameError(
                f"supernet {cls.name!r} has no preset {preset!r}",
                hint=f"presets: {', '.join(cls.presets)}",
            )
        return cls.presets[preset]

    @classmethod
    def configure(
        cls, preset: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Supernet:
        """A supernet from a preset plus field overrides; string values (from the CLI) are converted.

        ``overrides`` name fields of ``settings_class``; tuples may be given as
        ``"16,24,32"``. Unknown fields and values of the wrong type raise
        :class:`ConfigError` naming the field.
        """
        preset = preset or cls.default_preset
        return cls.from_settings(cls.preset_settings(preset), overrides, preset=preset)

    @classmethod
    def from_settings(
        cls,
        base: Any,
        overrides: Mapping[str, Any] | None = None,
        *,
        preset: str | None = None,
    ) -> Supernet:
        """A supernet from ``base`` settings with field ``overrides`` (converted and checked as in :meth:`configure`)."""
        if not overrides:
            return cls(base, preset=preset)
        fields = {f.name: f for f in dataclasses.fields(cls.settings_class)}
        hints = typing.get_type_hints(cls.settings_class)
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in fields:
                raise ConfigError(
                    f"supernet {cls.name!r} has no setting {key!r}",
                    hint=f"settings: {', '.join(fields)}",
                )
            changes[key] = _convert(cls.name, key, value, hints[key], getattr(base, key))
        return cls(dataclasses.replace(base, **changes), preset=preset)

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> Supernet:
        """Inverse of :attr:`arguments`: rebuild the same supernet (as checkpoints do)."""
        if arguments.get("supernet") not in (None, cls.name):
            raise ConfigError(
                f"arguments are for supernet {arguments.get('supernet')!r}, not {cls.name!r}"
            )
        settings = arguments.get("settings", {})
        if not isinstance(settings, Mapping):
            raise ConfigError(
                f"supernet {cls.name!r}: 'settings' must be an object of field: value"
            )
        preset = arguments.get("preset")
        base = cls.preset_settings(preset or cls.default_preset)
        # a supernet built from a pretrained model has no preset: keep it that way
        return cls.from_settings(base, settings, preset=preset)

    @property
    def arguments(self) -> dict[str, Any]:
        """JSON-ready record of how this supernet was built: name, preset and every setting."""
        return {
            "supernet": self.name,
            "preset": self.preset,
            "settings": _jsonable(dataclasses.asdict(self.settings)),
        }

    def validate_settings(self, settings: Any) -> None:
        """Raise :class:`ConfigError` for settings that cannot build a network.

        Subclasses check their own fields after calling this.
        """
        if not isinstance(settings, self.settings_class):
            raise ConfigError(
                f"supernet {self.name!r} takes {self.settings_class.__name__} settings, "
                f"got {type(settings).__name__}"
            )

    # -- the search space ------------------------------------------------------------

    @cached_property
    def space(self) -> SearchSpace:
        """The search space of subnets (built once per supernet object)."""
        return self.build_space()

    @abstractmethod
    def build_space(self) -> SearchSpace:
        """Build the :class:`SearchSpace`; its name is the supernet's ``name``."""

    def subnet(self, config: Subnet | Mapping[str, Any]) -> Subnet:
        """``config`` validated and made canonical for this supernet's space."""
        if isinstance(config, Subnet):
            if config.space != self.space.name:
                raise ConfigError(
                    f"subnet {config} belongs to space {config.space!r}, not {self.space.name!r}"
                )
            return self.space.subnet(config.to_dict())
        return self.space.subnet(config)

    # -- torch modules ---------------------------------------------------------------------

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """A new elastic module holding every weight of the supernet (largest subnet active).

        Weights are initialised under :func:`seeded` with ``init_seed``, so two
        builds are identical until trained or loaded.
        """

    @abstractmethod
    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        """Make ``module`` (from :meth:`build`) compute ``subnet`` on its next forward passes."""

    @abstractmethod
    def extract(self, module: torch.nn.Module, subnet: Subnet) -> torch.nn.Module:
        """A standalone static module computing ``subnet`` with weights sliced out of ``module``.

        It holds copies (not views) of the weights and no elastic machinery; in
        eval mode its outputs equal ``module``'s with ``subnet`` active.
        """

    @abstractmethod
    def input_spec(self, subnet: Subnet, batch: int = 1) -> TensorSpec:
        """Name, shape and dtype of the input ``subnet`` takes (its resolution gene respected).

        The name is the static module's ``forward`` argument, so it is also the
        input name of the subnet's IR, ONNX file and Relax function.
        """

    def example_input(self, subnet: Subnet, batch: int = 1, *, seed: int = 0) -> torch.Tensor:
        """A deterministic random input of :meth:`input_spec`'s shape (floats ~ N(0, 1))."""
        import torch

        spec = self.input_spec(subnet, batch)
        generator = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point:
            return torch.randn(spec.shape, generator=generator, dtype=dtype)
        return torch.randint(0, 2, spec.shape, generator=generator, dtype=dtype)

    def adapt_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """A data batch made fit for ``subnet`` (image supernets resize to its resolution); default: as is."""
        return batch

    def static_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """A data batch shaped as :meth:`input_spec` says (an exported model's fixed input); default: :meth:`adapt_input`."""
        return self.adapt_input(batch, subnet)

    def forward(self, module: torch.nn.Module, subnet: Subnet, batch: torch.Tensor) -> torch.Tensor:
        """Run ``subnet`` inside the elastic ``module`` on a data batch (adapted to the subnet first)."""
        self.set_active(module, subnet)
        return module(self.adapt_input(batch, subnet))

    # -- from a pretrained model -------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        *,
        weights: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> PretrainedModel:
        """This supernet built around a pretrained model, whose largest subnet computes that model.

        ``source`` names the model in the supernet's own terms (a package, a
        directory, ``file.py:factory``); ``weights`` is an optional state-dict
        file; ``overrides`` are settings fields as text (the elastic choices).
        Supernets that cannot wrap pretrained models raise :class:`ConfigError`.
        """
        raise ConfigError(
            f"supernet {cls.name!r} cannot be built from a pretrained model",
            hint="supernets that can: see `hwnas train --help` (--from-pretrained)",
        )

    def sort_by_importance(
        self, module: torch.nn.Module, batches: list[Any]
    ) -> tuple[Supernet, dict[str, Any]]:
        """Reorder ``module``'s channels, heads or layers so that smaller subnets keep the most important ones.

        Must not change what the largest subnet computes. ``batches`` are input
        tensors (calibration data). Returns the supernet to use from now on
        (this one, or one whose settings record a new layer order) and a
        JSON-ready summary of what moved; the default keeps the order as it is.
        """
        return self, {}

    # -- checkpoints -------------------------------------------------------------------------

    def load_state_dict(
        self, module: torch.nn.Module, state_dict: Mapping[str, Any], *, where: str = "state dict"
    ) -> None:
        """Load weights into an elastic module; shape or key mismatches raise :class:`ConfigError`."""
        try:
            result = module.load_state_dict(dict(state_dict), strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"{where} does not fit supernet {self.name!r} ({self.preset or 'custom'}): "
                f"{str(exc).splitlines()[0]}",
                hint="build the supernet with the settings the checkpoint was trained with",
            ) from None
        del result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(preset={self.preset!r}, space size={self.space.size():.3g})"


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under a fixed torch CPU seed without disturbing the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _convert(supernet: str, field: str, value: Any, hint: Any, current: Any) -> Any:
    """A setting value from JSON or a CLI string, checked against the field's type."""
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            item = args[0] if args else type(current[0]) if current else str
            parts = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_scalar(item, p) for p in parts)
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if value in (None, "none", "None"):
                return None
            return _scalar(options[0], value)
        return _scalar(hint, value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"supernet {supernet!r}: setting {field!r} = {value!r} is not a valid {getattr(hint, '__name__', hint)}",
            hint=f"current value: {current!r}",
        ) from None


def _scalar(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return bool(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if kind is float:
        return float(value)
    if kind is str:
        return str(value).strip()
    raise TypeError(kind)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
