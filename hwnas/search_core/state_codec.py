"""Strategy state as JSON, never pickle: a resumed run directory is data from who knows where.

Plain data (numbers, strings, lists, string-keyed dicts, None) passes through;
tuples, bytes and numpy arrays/scalars are tagged so they come back as they were.
Anything else is refused when the state is saved, naming where it sits.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from hwnas.errors import ConfigError

_TAG = "__hwnas__"


def encode_state(state: Any, *, owner: str = "strategy") -> str:
    """``state`` as JSON text; a value that is not plain data is a :class:`ConfigError` naming its path."""
    return json.dumps(_encode(state, owner, "state"), separators=(",", ":"), allow_nan=True)


def decode_state(text: str | bytes) -> Any:
    """The state :func:`encode_state` wrote; anything else is a :class:`ConfigError`."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"saved strategy state is not JSON ({exc})") from None
    return _decode(raw)


def _encode(value: Any, owner: str, path: str) -> Any:
    import numpy as np

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_TAG: "float", "value": repr(value)}
    if isinstance(value, np.generic):
        return _encode(value.item(), owner, path)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ConfigError(f"{owner} state {path} is an object array, which JSON cannot hold")
        return {
            _TAG: "ndarray",
            "dtype": value.dtype.str,
            "shape": list(value.shape),
            "data": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
        }
    if isinstance(value, bytes):
        return {_TAG: "bytes", "hex": value.hex()}
    if isinstance(value, tuple):
        return {
            _TAG: "tuple",
            "items": [_encode(v, owner, f"{path}[{i}]") for i, v in enumerate(value)],
        }
    if isinstance(value, list):
        return [_encode(v, owner, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ConfigError(
                f"{owner} state {path} has a non-string key {bad[0]!r}",
                hint="use string keys (e.g. bytes.hex() or str(number)) in state_dict()",
            )
        if _TAG in value:
            raise ConfigError(f"{owner} state {path} uses the reserved key {_TAG!r}")
        return {k: _encode(v, owner, f"{path}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"{owner} state {path} holds a {type(value).__name__}, which is not plain data",
        hint="state_dict() must return numbers, strings, lists, tuples, dicts, bytes or numpy arrays",
    )


def _decode(value: Any) -> Any:
    import numpy as np

    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v) for k, v in value.items()}
    try:
        if tag == "ndarray":
            dtype = np.dtype(value["dtype"])
            if dtype.hasobject:
                raise ValueError("object arrays are refused")
            data = base64.b64decode(value["data"], validate=True)
            return np.frombuffer(data, dtype=dtype).reshape(value["shape"]).copy()
        if tag == "tuple":
            return tuple(_decode(v) for v in value["items"])
        if tag == "bytes":
            return bytes.fromhex(value["hex"])
        if tag == "float":
            return float(value["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"saved strategy state has a damaged {tag} entry ({exc})") from None
    raise ConfigError(f"saved strategy state has an unknown entry type {tag!r}")
