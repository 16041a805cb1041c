"""pytest plugin: the ``edge_farm`` fixture, a farm of emulated aarch64 boards behind an RPC tracker.

The boards are ``tools/edge_board.py``'s (qemu-user chroot, TVM ``rpc_server``);
the tracker listens where the ``arm/rasp4-emulated`` preset looks
(127.0.0.1:9190, key ``rasp4-emulated``). Without a built board root, or
without root, edge tests skip, unless ``HWNAS_REQUIRE_EDGE=1`` (CI), which
turns every such skip into a failure.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

PRESET = "arm/rasp4-emulated"
KEY = "rasp4-emulated"
TRACKER_PORT = 9190  # where the preset looks
BOARDS = 2
START_TIMEOUT_S = 420.0  # each board imports tvm under qemu; slow on a loaded machine
REQUIRE_ENV = "HWNAS_REQUIRE_EDGE"
TOOLS = Path(__file__).resolve().parents[1] / "tools"


def edge_required() -> bool:
    """CI sets ``HWNAS_REQUIRE_EDGE=1``: edge tests must run there, never skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def not_available(reason: str) -> None:
    """Skip with ``reason``, or fail with it when edge tests are required."""
    if edge_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so edge tests may not skip)", pytrace=False)
    pytest.skip(reason)


def edge_board_module() -> ModuleType:
    """``tools/edge_board.py``, imported by path (``tools/`` is not a package)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module("edge_board")


@dataclass
class EdgeFarm:
    """The running farm: tracker address, board index -> port, and whether this session started it."""

    tracker_port: int
    key: str
    board_ports: dict[int, int]
    started_here: bool
    start_s: float | None
    tool: ModuleType = field(repr=False)

    preset = PRESET

    def free_boards(self) -> int:
        return int(
            self.tool.tracker_summary(self.tracker_port)
            .get("queue_info", {})
            .get(self.key, {})
            .get("free", 0)
        )

    def board_address(self, index: int) -> str:
        return f"127.0.0.1:{self.board_ports[index]}"

    def alive_boards(self) -> list[int]:
        return [b["index"] for b in self.tool.farm_status().get("boards", []) if b["alive"]]

    def serving_board(self) -> int | None:
        """Index of a board serving an RPC session now: its server has forked a session process
        beside the worker that holds its port."""
        import psutil

        for board in self.tool.farm_status().get("boards", []):
            if not board["alive"]:
                continue
            try:
                children = psutil.Process(board["pid"]).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            if len(children) >= 2:
                return int(board["index"])
        return None

    def stop_board(self, index: int) -> bool:
        return bool(self.tool.stop_board(index))

    def ensure_boards(self, n: int = BOARDS) -> None:
        """Restart the farm (same key and ports) if fewer than ``n`` boards are up and free."""
        if len(self.alive_boards()) >= n and self.free_boards() >= n:
            return
        self.tool.stop_farm()
        state = self.tool.start_farm(
            n=n, key=self.key, tracker_port=self.tracker_port, timeout=START_TIMEOUT_S
        )
        self.board_ports = {b["index"]: b["port"] for b in state["boards"]}


def _reuse(tool: ModuleType) -> EdgeFarm | None:
    """The farm edge_board already runs on our port and key with enough boards, else None."""
    status = tool.farm_status()
    if not status.get("running"):
        return None
    port, key = status["tracker"]["port"], status.get("key")
    if port != TRACKER_PORT or key != KEY:
        not_available(
            f"an edge_board farm is running with key {key!r} on tracker port {port}, not {KEY!r} on "
            f"{TRACKER_PORT}; stop it first: python tools/edge_board.py stop"
        )
    free = int(status.get("queue_info", {}).get(KEY, {}).get("free", 0))
    if status["boards_alive"] < BOARDS or free < BOARDS:
        not_available(
            f"the running edge_board farm has {status['boards_alive']} board(s) alive, {free} free; "
            f"edge tests need {BOARDS}: python tools/edge_board.py stop (this session then starts its own)"
        )
    ports = {b["index"]: b["port"] for b in status["boards"]}
    return EdgeFarm(
        TRACKER_PORT, KEY, ports, started_here=False, start_s=status.get("start_s"), tool=tool
    )


def _port_taken(tool: ModuleType) -> str:
    """Why the tracker port cannot be ours ('' if it is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", TRACKER_PORT))
            return ""
        except OSError:
            pass
    try:
        keys = sorted(tool.tracker_summary(TRACKER_PORT, timeout=2.0).get("queue_info", {}))
        what = f"an RPC tracker that tools/edge_board.py did not start (device keys there: {keys or 'none'})"
    except (OSError, ValueError, tool.BoardError):
        what = "something that is not an RPC tracker"
    return f"port {TRACKER_PORT}, where the {PRESET} preset looks for its tracker, is taken by {what}; stop it"


@pytest.fixture(scope="session")
def edge_farm() -> Iterator[EdgeFarm]:
    """A farm of 2 emulated boards for the whole session: reused if already up, else started and stopped here."""
    tool = edge_board_module()
    if not tool.root_is_built():
        not_available(
            f"the emulated board root is not built at {tool.root_dir()}; "
            "build it once (about 10 min, as root): python tools/edge_board.py build"
        )
    if os.geteuid() != 0:
        not_available(
            "emulated boards run in a chroot, which needs root; run the edge tests as root"
        )
    farm = _reuse(tool)
    if farm is not None:
        boards = len(farm.alive_boards())
        yield farm
        farm.ensure_boards(boards)  # leave a farm we found as we found it (a test may kill a board)
        return
    taken = _port_taken(tool)
    if taken:
        not_available(taken)
    try:
        state = tool.start_farm(
            n=BOARDS, key=KEY, tracker_port=TRACKER_PORT, timeout=START_TIMEOUT_S
        )
    except tool.BoardError as exc:
        pytest.fail(f"could not start the emulated board farm: {exc}", pytrace=False)
    farm = EdgeFarm(
        TRACKER_PORT,
        KEY,
        {b["index"]: b["port"] for b in state["boards"]},
        started_here=True,
        start_s=state.get("start_s"),
        tool=tool,
    )
    try:
        yield farm
    finally:
        tool.stop_farm()
