"""The ``tvm-rpc`` target: cross-compiled TVM libraries run on remote boards over TVM RPC.

``tvm-rpc:aarch64@HOST:PORT?key=K`` asks the tracker at HOST:PORT for a free
board of key K (without ``key``, HOST:PORT is one RPC server). Timing uses the
board's own ``time_evaluator``; a board that dies is reported as lost so the
core retries the measurement on another one.
"""

from __future__ import annotations

import gc
import ipaddress
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    ConfigError,
    Runner,
    StandaloneRunner,
    Target,
    hookimpl,
    module_available,
    package_version,
    stable_hash,
)
from hwnas_targets import rpc_tracker
from hwnas_targets.tvm_compile import LIBRARY, Tuning, build, library_artifact
from hwnas_targets.tvm_relax_vm import RelaxVM
from hwnas_targets.tvm_target import PIPELINE_VERSION, tuning_root

if TYPE_CHECKING:
    from hwnas import GraphIR

# board architecture -> (LLVM triple, cross compiler, default mattr)
ARCHES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "aarch64": ("aarch64-linux-gnu", "aarch64-linux-gnu-gcc", ("+neon",)),
    "armv7": ("armv7l-linux-gnueabihf", "arm-linux-gnueabihf-gcc", ("+neon",)),
    "x86_64": ("x86_64-linux-gnu", "gcc", ()),
}
DEFAULT_PORT = 9190
#: How long a worker waits for the tracker to hand out a free board.
REQUEST_TIMEOUT_S = 120.0
#: Words in an RPC failure that mean the board (or the link to it) went away.
LOST_DEVICE_WORDS = ("rpc", "socket", "connection", "broken pipe", "session", "closed", "timed out")


MISMATCH_WORDS = ("elf", "wrong", "architecture", "format", "cannot open shared object")


class BoardMismatch(RuntimeError):
    """The board behind the tracker key is not the kind the spec names (it cannot run its library)."""


def warn_if_exposed(what: str, host: str) -> None:
    """TVM RPC has no authentication: say so when it goes beyond this machine."""
    if _is_loopback(host) or host in _WARNED:
        return
    _WARNED.add(host)
    warnings.warn(
        f"the {what} at {host} is not on loopback; TVM RPC has no authentication, so anyone who "
        "reaches it can run code on the boards or report made-up timings. Use an SSH tunnel or a "
        "private network (docs/EDGE.md).",
        stacklevel=3,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_WARNED: set[str] = set()
TRUE = ("1", "true", "yes")


class RemoteRelaxVM(RelaxVM):
    """A Relax VM on a remote board; holds the RPC session open while it lives."""

    def __init__(self, session: Any, library: Any, info: dict[str, Any]) -> None:
        self.session = session
        super().__init__(library, session.cpu(0), info)

    def close(self) -> None:
        # Dropping the last references ends the session; the server deletes its upload dir.
        # TVM leaves the session in a reference cycle (the remote device holds it too), so
        # without a collection the board stays taken and a farm runs out of free boards.
        self.vm = None
        self.session = None
        self.dev = None
        gc.collect()


class TvmRpcTarget(Target):
    kind = "tvm-rpc"
    runtime = "tvm"
    runtime_package = "apache-tvm"
    description = "TVM Relax cross-compiled for a remote board and timed there over TVM RPC (tracker or server)"
    remote = True
    options_help = {
        "key": "device key at the RPC tracker at the address (without it the address is one RPC server)",
        "mcpu": "LLVM CPU of the board, e.g. cortex-a72 (default: generic for the architecture)",
        "mattr": "LLVM features, comma-separated (default: +neon on arm)",
        "threads": "threads on the board (default: the protocol's, else the board runtime's own)",
        "trials": "MetaSchedule trials per task, measured on the boards through the tracker (default 0)",
        "db": "tuning database directory (default: ~/.cache/hwnas/tvm-tuning/<target fingerprint>)",
        "cc": "cross compiler that links the library (default: by architecture, e.g. aarch64-linux-gnu-gcc)",
        "emulated": "1 if the boards are emulated (qemu): recorded in the fingerprint",
    }

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.arch = self.device_from_spec(tuple(ARCHES), "aarch64", what="board architecture")
        if not spec.address:
            raise ConfigError(
                f"target {spec}: no address",
                hint="write tvm-rpc:ARCH@HOST:PORT?key=KEY (tracker) or tvm-rpc:ARCH@HOST:PORT (one server)",
            )
        self.host, self.port = rpc_tracker.parse_address(spec.address, DEFAULT_PORT)
        warn_if_exposed("RPC tracker" if spec.option("key") else "RPC server", self.host)
        self.key = spec.option("key") or ""
        self.trials = self.int_option("trials", 0) or 0
        if self.trials and not self.key:
            raise ConfigError(
                f"target {spec}: tuning on a board needs a tracker",
                hint="add ?key=KEY of the boards",
            )
        triple, compiler, mattr = ARCHES[self.arch]
        self.triple = triple
        self.compiler = spec.option("cc") or compiler
        mattr_option = spec.option("mattr")
        self.mattr = tuple(a for a in mattr_option.split(",") if a) if mattr_option else mattr
        self.emulated = (spec.option("emulated") or "").lower() in TRUE

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        return (f"tvm-rpc:aarch64@127.0.0.1:{DEFAULT_PORT}?key=rasp4",)

    def available(self) -> Availability:
        if not module_available("tvm"):
            return Availability.no("TVM is not installed (pip install apache-tvm[rpc])")
        if not shutil.which(self.compiler):
            return Availability.no(
                f"cross compiler {self.compiler} not found (e.g. apt-get install gcc-{self.triple})"
            )
        what = "RPC tracker" if self.key else "RPC server"
        why = rpc_tracker.reachable(self.host, self.port)
        if why:
            return Availability.no(f"{what} {self.host}:{self.port} not reachable ({why})")
        if self.key:
            try:
                info = rpc_tracker.summary(self.host, self.port)
            except (OSError, ValueError) as exc:
                return Availability.no(
                    f"{self.host}:{self.port} does not answer as an RPC tracker ({exc})"
                )
            if self.key not in info.get("queue_info", {}):
                keys = ", ".join(sorted(info.get("queue_info", {}))) or "none"
                return Availability.no(
                    f"no board with key {self.key!r} at the tracker (keys there: {keys})"
                )
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        return {
            "runtime": "tvm",
            "version": package_version("apache-tvm"),
            "device": self.arch,
            "triple": self.triple,
            "mcpu": self.spec.option("mcpu") or "generic",
            "mattr": list(self.mattr),
            "key": self.key,
            "tracker" if self.key else "server": f"{self.host}:{self.port}",
            "emulated": self.emulated,
            "threads": self.pinned_threads(),
            "trials": self.trials,
            "pipeline": PIPELINE_VERSION,
        }

    def hardware(self) -> dict[str, Any]:
        """The boards' kind: architecture, LLVM CPU and triple (each measurement names the board it ran on)."""
        return {
            "device": self.arch,
            "name": self.spec.option("mcpu") or f"generic {self.arch}",
            "arch": self.triple,
            "emulated": self.emulated,
        }

    def threads(self, requested: int | None = None) -> int:
        """Threads on the board; 0 leaves the board runtime's default (its core count)."""
        return self.pinned_threads() or requested or 0

    def parallel_slots(self) -> int:
        if not self.key:
            return 1
        return max(1, rpc_tracker.free_boards(self.host, self.port, self.key))

    def is_device_lost(self, exc: BaseException) -> bool:
        if isinstance(exc, BoardMismatch):
            return False
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return True
        text = f"{type(exc).__name__}: {exc}".lower()
        return any(word in text for word in LOST_DEVICE_WORDS)

    def tuning_dir(self) -> Path:
        if self.spec.option("db"):
            return Path(str(self.spec.option("db"))).expanduser()
        fp = {
            k: v for k, v in self.fingerprint().items() if k not in ("trials", "tracker", "server")
        }
        return tuning_root() / f"{self.arch}-{stable_hash(fp)}"

    def tvm_target(self) -> dict[str, Any]:
        target: dict[str, Any] = {"kind": "llvm", "mtriple": self.triple}
        if self.spec.option("mcpu"):
            target["mcpu"] = self.spec.option("mcpu")
        if self.mattr:
            target["mattr"] = list(self.mattr)
        if self.pinned_threads() or self.trials:
            # MetaSchedule needs the board's core count; without pinned threads assume 4 (a Pi 4).
            target["num-cores"] = self.pinned_threads() or 4
        return target

    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        tuning = None
        if self.trials:
            tuning = Tuning(
                trials=self.trials,
                work_dir=self.tuning_dir(),
                rpc=(self.host, self.port, self.key),
                cross_compiler=self.compiler,
            )
        details = build(
            ir, self.tvm_target(), workdir / LIBRARY, tuning=tuning, cross_compiler=self.compiler
        )
        return library_artifact(self, ir, workdir, {**details, "cross_compiler": self.compiler})

    def connect(self) -> tuple[Any, str]:
        """Open an RPC session on a free board (or the one server); returns it and the board's address."""
        from tvm import rpc

        if not self.key:
            return rpc.connect(self.host, self.port), f"{self.host}:{self.port}"
        board = rpc_tracker.request(self.host, self.port, self.key, timeout=REQUEST_TIMEOUT_S)
        # A tracker on loopback reports boards by their own view of their address.
        board_host = self.host if board.host in ("0.0.0.0", "") else board.host
        warn_if_exposed("board", board_host)
        return rpc.connect(board_host, board.port, board.match_key), f"{board_host}:{board.port}"

    def load(self, artifact: Artifact, threads: int) -> Runner:
        session, address = self.connect()
        remote_name = f"hwnas-{artifact.files[0].sha256[:16]}.so"
        session.upload(str(artifact.path()), target=remote_name)
        try:
            library = session.load_module(remote_name)
        except Exception as exc:
            # glibc reports a library for another machine as "cannot open shared object file"
            # even though it was just uploaded; others say "wrong ELF class" or "invalid format".
            if any(word in str(exc).lower() for word in MISMATCH_WORDS):
                # A board of another kind (or a fake one) cannot load this library: never time it.
                raise BoardMismatch(
                    f"the board at {address} (key {self.key or '-'}) cannot load a {self.triple} "
                    f"library, so it is not the {self.arch} board this target names: "
                    f"{str(exc).strip().splitlines()[0][:200]}"
                ) from None
            raise
        if threads:
            session.get_function("runtime.config_threadpool")(1, threads)
        board_threads = int(session.get_function("runtime.NumThreads")())
        info = {
            "board": address,
            "key": self.key,
            "threads": board_threads,
            "emulated": self.emulated,
        }
        return StandaloneRunner(RemoteRelaxVM(session, library, info))


@hookimpl
def hwnas_register_targets(register: Any) -> None:
    register(TvmRpcTarget)
