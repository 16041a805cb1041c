"""Notices hwnas logs once per process (a slower fallback taken, say), through :mod:`logging`.

A search meets the same fallback on every candidate; the log says it once.
Configuring handlers is the application's business, not this module's.
"""

from __future__ import annotations

import logging
import threading

_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def log_once(message: str, *, logger: str = "hwnas", level: int = logging.WARNING) -> bool:
    """Log ``message`` on ``logger`` unless it was logged before in this process; True if it was logged now."""
    with _lock:
        if (logger, message) in _seen:
            return False
        _seen.add((logger, message))
    logging.getLogger(logger).log(level, message)
    return True
