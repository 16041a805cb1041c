"""How the conformance kit reports a broken contract: :class:`ConformanceError` and :func:`require`."""

from __future__ import annotations

from hwnas.errors import HwnasError


class ConformanceError(HwnasError, AssertionError):
    """A plugin breaks the contract of docs/PLUGINS.md; the message says where and how.

    An ``AssertionError`` too, so pytest reports it as a failed check.
    """


def require(condition: object, message: str, *, hint: str | None = None) -> None:
    """Raise :class:`ConformanceError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConformanceError(message, hint=hint or "see docs/PLUGINS.md")
