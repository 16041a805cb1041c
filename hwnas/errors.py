"""Every exception hwnas raises on purpose, rooted at :class:`HwnasError`.

User-facing errors carry what was wrong, where, and what to do; the CLI prints
``str(error)`` in one or two lines and exits with code 2.
"""

from __future__ import annotations


class HwnasError(Exception):
    """Base of every error hwnas raises on purpose (the CLI exits 2 on these)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(HwnasError, ValueError):
    """A user's configuration, subnet, option or file is invalid."""


class PluginError(HwnasError):
    """A plugin failed to load or register; names the plugin."""

    def __init__(self, plugin: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"plugin {plugin!r}: {message}", hint=hint)
        self.plugin = plugin


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind of thing."""


class UnknownNameError(HwnasError, LookupError):
    """A name (strategy, predictor, supernet, preset) nobody registered."""


class UnknownTargetError(UnknownNameError):
    """A target spec whose kind or preset nobody registered."""


class TargetUnavailableError(HwnasError):
    """A registered target whose runtime or device is missing on this machine."""


class CompileError(HwnasError):
    """A target failed to compile a model."""


class MeasurementError(HwnasError):
    """A measurement failed: crash, hang, timeout, or outputs that do not match."""


class EvaluationError(HwnasError):
    """Evaluating one candidate failed; the search records it and goes on."""


class StrategyError(PluginError):
    """A search strategy plugin raised in ``ask`` or ``tell``; the search stops, keeping what it measured."""
