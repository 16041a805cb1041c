"""A small client of TVM's RPC tracker protocol: summary of boards by key, and requesting one.

Speaks the tracker's wire format directly (magic number, length-prefixed
JSON), so ``available()`` and board counting need no TVM import, and a
request says which board (host, port) was handed out.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

from hwnas import ConfigError

TRACKER_MAGIC = 0x2F271
SUCCESS = 0
REQUEST = 4
SUMMARY = 6


@dataclass(frozen=True)
class Board:
    """An RPC server the tracker handed out: where it listens and the key that opens it."""

    host: str
    port: int
    match_key: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(address: str, default_port: int = 9190) -> tuple[str, int]:
    """``"127.0.0.1:9190"`` -> ``("127.0.0.1", 9190)``."""
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, str(default_port)
    if not host:
        raise ConfigError(
            f"address {address!r} has no host", hint="write HOST:PORT, e.g. 127.0.0.1:9190"
        )
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"address {address!r}: port {port!r} is not a number") from None
    if not 1 <= number <= 65535:
        raise ConfigError(f"address {address!r}: port {number} is not in 1..65535")
    return host, number


def reachable(host: str, port: int, timeout: float = 0.5) -> str:
    """'' if something accepts TCP connections there, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the tracker closed the connection")
        data += chunk
    return data


def _call(host: str, port: int, message: list[Any], timeout: float) -> Any:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("<i", TRACKER_MAGIC))
        if struct.unpack("<i", _recv_exact(sock, 4))[0] != TRACKER_MAGIC:
            raise ConnectionError(f"{host}:{port} is not a TVM RPC tracker")
        data = json.dumps(message).encode()
        sock.sendall(struct.pack("<i", len(data)) + data)
        size = struct.unpack("<i", _recv_exact(sock, 4))[0]
        reply = json.loads(_recv_exact(sock, size).decode())
    if not isinstance(reply, list) or reply[0] != SUCCESS:
        raise ConnectionError(f"tracker {host}:{port} refused {message[0]}: {reply}")
    return reply[1]


def summary(host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    """``{"queue_info": {key: {"free": n, "pending": m}}, "server_info": [...]}``."""
    return _call(host, port, [SUMMARY], timeout)


def free_boards(host: str, port: int, key: str, timeout: float = 2.0) -> int:
    """How many boards of ``key`` are free now (0 if the tracker is unreachable)."""
    try:
        info = summary(host, port, timeout)
    except (OSError, ValueError):
        return 0
    return int(info.get("queue_info", {}).get(key, {}).get("free", 0))


def request(host: str, port: int, key: str, *, priority: int = 1, timeout: float = 120.0) -> Board:
    """Wait (at most ``timeout`` s) until the tracker hands out a free board of ``key``."""
    try:
        url, board_port, match_key = _call(host, port, [REQUEST, key, "", priority], timeout)
    except TimeoutError:
        raise TimeoutError(
            f"no free board with key {key!r} at tracker {host}:{port} within {timeout:g} s"
        ) from None
    return Board(str(url), int(board_port), str(match_key))
