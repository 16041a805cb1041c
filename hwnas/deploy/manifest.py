"""The artifact manifest: file names of an exported directory, and reading ``manifest.json`` safely.

A manifest is untrusted input: every field verify and run.py rely on is
checked for presence, type and a sane range before anything uses it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.measurement.protocol import MAX_TOLERANCE

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "hwnas-artifact/1"
COMPILED_DIR = "compiled"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.npz"
REFERENCE_FILE = "reference.npz"
RUNNER_FILE = "run.py"

# field path -> the type it must have
_REQUIRED: dict[tuple[str, ...], type | tuple[type, ...]] = {
    ("subnet", "key"): str,
    ("target", "spec"): str,
    ("target", "kind"): str,
    ("runtime", "loader"): str,
    ("runtime", "entry"): str,
    ("inputs",): list,
    ("outputs",): list,
    ("reference",): str,
    ("verification", "rtol"): (int, float),
    ("verification", "atol"): (int, float),
    ("files",): list,
}


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``manifest.json`` of an artifact directory, checked; a missing or malformed field is a :class:`ConfigError`."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ConfigError(
            f"{directory} is not a directory", hint="pass the directory `hwnas export --out` wrote"
        )
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{directory} is not an hwnas artifact: {MANIFEST} is missing",
            hint="pass the directory `hwnas export --out` wrote",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); the manifest was damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ConfigError(f"{path}: format {found!r} is not {MANIFEST_FORMAT!r}")
    for fields, kind in _REQUIRED.items():
        value: Any = manifest
        for name in fields:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None or isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(
                f"{path}: field {'.'.join(fields)} is missing or not a {_type_name(kind)}",
                hint="the manifest was edited or written by another tool; re-export the artifact",
            )
    for name in ("rtol", "atol"):
        value = float(manifest["verification"][name])
        if not (math.isfinite(value) and 0.0 <= value <= MAX_TOLERANCE):
            raise ConfigError(
                f"{path}: verification.{name}={value:g} is outside 0..{MAX_TOLERANCE:g}",
                hint="a tolerance that wide proves nothing; the manifest was edited",
            )
    return manifest


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("number" if k in (int, float) else k.__name__ for k in kinds)


def artifact_digest(directory: str | Path) -> str:
    """``sha256:<hex>`` of manifest.json: it lists every file's sha256, so it pins the whole artifact."""
    data = (Path(directory) / MANIFEST).read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()
