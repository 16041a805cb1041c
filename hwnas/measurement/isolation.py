"""Long-lived spawned worker processes that run one function call at a time under a timeout.

A crash (segfault, abort, OOM kill) or a hang kills that worker only and is
reported as an :class:`Outcome`; what runs in a worker is :mod:`hwnas.measurement.measurer`'s business.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hwnas.leftovers import pid_tag, sweep

#: Lines of a dead worker's stderr kept in the failure reason.
LOG_TAIL_LINES = 6


@dataclass(frozen=True)
class Outcome:
    """What one isolated call gave: a value, or a failure (``crash``, ``timeout``, ``error``) and why."""

    ok: bool
    value: Any = None
    failure: str = ""
    reason: str = ""
    traceback: str = ""
    seconds: float = 0.0


class Worker:
    """One spawned Python process with fixed environment variables, reused across calls until it fails.

    The process is a fresh interpreter (``python -c``), not a fork and not
    :mod:`multiprocessing` (which would re-run the caller's main script); it
    talks over a socket pair and writes its stdout/stderr to a log file.
    """

    def __init__(self, env: Mapping[str, str] | None = None, name: str = "hwnas-worker") -> None:
        self.env = dict(env or {})
        self.name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        fd, path = tempfile.mkstemp(prefix=f"{name}-{pid_tag()}-", suffix=".log")
        os.close(fd)
        self._log = Path(path)
        self.calls = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process now (a call starts it on demand anyway)."""
        if self.alive:
            return
        self._stop()
        ours, theirs = socket.socketpair()
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
                pass_fds=(theirs.fileno(),),
            )
        theirs.close()
        self._conn = Connection(ours.detach())
        # Jobs pickle functions and classes by reference: the worker must import what we can.
        self._conn.send(list(sys.path))

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Outcome:
        """Run ``fn(*args)`` in the worker; wait at most ``timeout`` seconds.

        ``fn`` and ``args`` must pickle (``fn`` a module-level function). On a
        crash or timeout the worker is gone and the next call starts a new one.
        """
        self.start()
        assert self._conn is not None
        os.truncate(self._log, 0)  # a failure's log tail is this call's
        start = time.perf_counter()
        self.calls += 1
        try:
            payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # what does not pickle never reaches the worker
            return Outcome(
                False,
                failure="error",
                reason=(
                    f"the job could not be sent to the worker process ({type(exc).__name__}: {exc}); "
                    "everything a Target holds must pickle: keep runtime handles (sessions, "
                    "devices, compilers) in the Runner that load() returns"
                ),
            )
        try:
            self._conn.send_bytes(payload)
            if not self._conn.poll(timeout):
                tail = self.log_tail()
                self._stop()
                reason = f"no result after {timeout:g} s; worker killed" + (
                    f" (log: {tail})" if tail else ""
                )
                return Outcome(
                    False, failure="timeout", reason=reason, seconds=time.perf_counter() - start
                )
            reply = self._conn.recv()
        except (EOFError, OSError):
            return self._crashed(time.perf_counter() - start)
        seconds = time.perf_counter() - start
        status, payload = reply
        if status == "ok":
            return Outcome(True, value=payload, seconds=seconds)
        reason, tb = payload
        return Outcome(False, failure="error", reason=reason, traceback=tb, seconds=seconds)

    def _crashed(self, seconds: float) -> Outcome:
        assert self._proc is not None
        try:
            code: int | None = self._proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            how = "stopped answering"
        elif code < 0:
            sig = signal.Signals(-code).name
            how = f"killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
        else:
            how = f"exited with status {code}"
        tail = self.log_tail()
        self._stop()
        reason = f"worker process {how}" + (f": {tail}" if tail else "")
        return Outcome(False, failure="crash", reason=reason, seconds=seconds)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the worker wrote to stdout/stderr, joined on one line."""
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._log.write_bytes(b"")  # the next process starts a fresh log

    def close(self) -> None:
        """Stop the process and remove its log."""
        if self._conn is not None and self.alive:
            try:
                self._conn.send(None)
                assert self._proc is not None
                self._proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()
        self._log.unlink(missing_ok=True)


class WorkerPool:
    """Workers by environment and slot, kept warm between calls (spawning one imports its runtime again)."""

    def __init__(self) -> None:
        sweep(Path(tempfile.gettempdir()), "hwnas-")  # logs of workers whose parent was killed
        self._workers: dict[tuple[tuple[tuple[str, str], ...], int], Worker] = {}
        self._lock = threading.Lock()

    def worker(self, env: Mapping[str, str], slot: int = 0) -> Worker:
        """The worker for this environment and slot (slots let several calls run at once)."""
        key = (tuple(sorted(env.items())), slot)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = Worker(env, name=f"hwnas-worker-{slot}")
            return worker

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()


_default_pool: WorkerPool | None = None


def default_pool() -> WorkerPool:
    """The process's shared pool, closed at exit."""
    global _default_pool
    if _default_pool is None:
        _default_pool = WorkerPool()
        atexit.register(_default_pool.close)
    return _default_pool


_BOOT = "import sys; from hwnas.measurement.isolation import serve; serve(int(sys.argv[1]), int(sys.argv[2]))"


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the parent is gone, even while a runtime call hangs in the main thread.

    (``PR_SET_PDEATHSIG`` would fire when the *thread* that started the worker
    ends, and workers are started from measure_many's short-lived threads.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="hwnas-parent-watch", daemon=True).start()


def serve(fd: int, parent: int) -> None:
    """Worker main loop: receive ``(fn, args)``, send ``("ok", value)`` or ``("error", (reason, tb))``."""
    import faulthandler

    _die_with_parent(parent)
    faulthandler.enable(all_threads=False)  # a segfault's Python stack lands in the log
    conn = Connection(fd)
    sys.path[:] = conn.recv()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:  # report everything; the parent decides what it means
            reply = ("error", (f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. a value that does not pickle
            conn.send(
                ("error", (f"result could not be sent back: {type(exc).__name__}: {exc}", ""))
            )
