"""Content digests every stage uses: the sha256 of a file and a short stable hash of plain data.

Kept apart from any stage so that model, measurement and deploy can all hash
without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(data: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``data``, first ``length`` hex digits."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
