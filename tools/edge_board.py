#!/usr/bin/env python3
"""Emulated aarch64 board farm for hwnas (issue 7).

Builds, once, an arm64 Debian bookworm root that runs under qemu-user
(binfmt_misc), with the TVM runtime installed in it, and runs a small farm
of TVM RPC servers inside that root behind an RPC tracker on the host.
Everything listens on loopback only.

Command line (``python tools/edge_board.py COMMAND ...``)::

    build [--force] [--no-onnxruntime]
    start [--boards N] [--key KEY] [--tracker-port P] [--base-port B]
          [--timeout S] [--threads T]
    status [--json]
    stop
    stop-board INDEX
    run [--workdir DIR] [--env K=V ...] -- CMD ...
    path

The same operations are importable (``build_root``, ``start_farm``,
``farm_status``, ``stop_farm``, ``stop_board``, ``run_on_board``,
``root_dir``, ``root_is_built``) so tests and fixtures can drive the farm.

Files live under ``${HWNAS_EDGE_ROOT:-$HOME/.cache/hwnas/edge-board}``::

    rootfs/              the arm64 root (board Python packages in
                         rootfs/opt/hwnas-site)
    build.json           marker of a completed build (recipe hash, timings)
    stages/*.json        per-stage markers (a half-finished build is redone
                         from the first stage without a matching marker)
    wheels/              aarch64 wheels downloaded for the board
    farm.json            state of the running farm (pids / process groups)
    logs/                tracker and board logs
    lock                 build lock

Building needs root (debootstrap, chroot, binfmt_misc); so does starting
boards (chroot). Exit status 2 means the board root is not built.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BoardError",
    "BoardNotBuilt",
    "FarmRunning",
    "build_root",
    "cache_dir",
    "farm_status",
    "root_dir",
    "root_is_built",
    "run_on_board",
    "start_farm",
    "stop_board",
    "stop_farm",
    "tracker_summary",
]

# --------------------------------------------------------------------------
# recipe
# --------------------------------------------------------------------------

RECIPE_VERSION = 1
SUITE = "bookworm"
ARCH = "arm64"
VARIANT = "minbase"
DEB_INCLUDE = ("python3", "python3-numpy", "python3-venv", "python3-pip", "libgomp1")
BOARD_PYTHON = "3.11"  # bookworm arm64 ships python3.11
PIP_PLATFORM = "manylinux_2_28_aarch64"
SITE_DIR = "/opt/hwnas-site"  # inside the root
PIP_REQUIREMENTS = (
    "apache-tvm==0.27.0.post1",
    "apache-tvm-ffi==0.1.14.post1",
    "ml_dtypes",
    "numpy>=2,<3",
    "typing_extensions",
    "psutil",
    "cloudpickle",
    "tornado",
)
PIP_OPTIONAL = ("onnxruntime",)
HOST_TOOLS = {  # executable or file -> Debian package providing it
    "debootstrap": "debootstrap",
    "qemu-aarch64-static": "qemu-user-static",
    "update-binfmts": "binfmt-support",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    # only a Recommends of the cross gcc, but linking a .so needs crti.o
    "/usr/aarch64-linux-gnu/lib/crti.o": "libc6-dev-arm64-cross",
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEY = "rasp4-emulated"
DEFAULT_TRACKER_PORT = 9190
DEFAULT_BASE_PORT = 9091
LOOPBACK = "127.0.0.1"
#: uid:gid the boards' RPC servers run as inside the root (nobody:nogroup).
BOARD_USER = "65534:65534"
BOARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_TRACKER_MAGIC = 0x2F271
_TRACKER_SUMMARY = 6
_TRACKER_SUCCESS = 0


class BoardError(RuntimeError):
    """The board farm could not do what was asked."""


class BoardNotBuilt(BoardError):
    """The emulated root has not been built (run ``edge_board.py build``)."""


class FarmRunning(BoardError):
    """A farm recorded in the state file is still running."""


def _log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[edge-board {stamp}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# paths and markers
# --------------------------------------------------------------------------


def cache_dir() -> Path:
    """Directory holding the root, markers, wheels, logs and farm state."""
    env = os.environ.get("HWNAS_EDGE_ROOT")
    base = Path(env) if env else Path.home() / ".cache" / "hwnas" / "edge-board"
    return base.expanduser().resolve()


def root_dir() -> Path:
    """The arm64 root filesystem of the emulated board."""
    return cache_dir() / "rootfs"


def _state_path() -> Path:
    return cache_dir() / "farm.json"


def _build_marker() -> Path:
    return cache_dir() / "build.json"


def _stage_marker(name: str) -> Path:
    return cache_dir() / "stages" / f"{name}.json"


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _debootstrap_recipe() -> dict[str, Any]:
    return {
        "v": RECIPE_VERSION,
        "suite": SUITE,
        "arch": ARCH,
        "variant": VARIANT,
        "include": list(DEB_INCLUDE),
    }


def _site_recipe(with_optional: bool) -> dict[str, Any]:
    return {
        "root": _hash(_debootstrap_recipe()),
        "platform": PIP_PLATFORM,
        "python": BOARD_PYTHON,
        "site": SITE_DIR,
        "requirements": list(PIP_REQUIREMENTS),
        "optional": list(PIP_OPTIONAL) if with_optional else [],
    }


def recipe_hash(with_optional: bool = True) -> str:
    """Hash of the whole build recipe; a change forces a rebuild."""
    return _hash({"root": _debootstrap_recipe(), "site": _site_recipe(with_optional)})


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _stage_done(name: str, digest: str) -> bool:
    data = _read_json(_stage_marker(name))
    return bool(data) and data.get("hash") == digest


def root_is_built() -> bool:
    """True when a complete build matching the current recipe is cached."""
    marker = _read_json(_build_marker())
    if not marker:
        return False
    wanted = {recipe_hash(True), recipe_hash(False)}
    if marker.get("hash") not in wanted:
        return False
    if not _stage_done("debootstrap", _hash(_debootstrap_recipe())):
        return False
    site = _read_json(_stage_marker("site")) or {}
    if site.get("hash") not in {_hash(_site_recipe(True)), _hash(_site_recipe(False))}:
        return False
    root = root_dir()
    return (root / "usr/bin/python3").exists() and (root / SITE_DIR.lstrip("/") / "tvm").is_dir()


def build_info() -> dict[str, Any] | None:
    """The build marker's contents (versions, timings), or None."""
    return _read_json(_build_marker()) if root_is_built() else None


# --------------------------------------------------------------------------
# process helpers
# --------------------------------------------------------------------------


def _run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    capture: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    _log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(
        [str(c) for c in cmd],
        env=env,
        check=check,
        timeout=timeout,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BoardError(f"{what} needs root (debootstrap/chroot/binfmt_misc); run as root")


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _proc_table() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, pgid, state) of every process, read from /proc."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'
        rest = raw[raw.rfind(")") + 2 :].split()
        rows.append((int(entry), int(rest[1]), int(rest[2]), rest[0]))
    return rows


def _reap(pid: int) -> None:
    """Collect a zombie child of this process, if it is one."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) members of process group ``pgid``."""
    _reap(pgid)
    return [pid for pid, _pp, pg, st in _proc_table() if pg == pgid and st != "Z"]


def _kill_group(pgid: int, grace: float = 8.0) -> bool:
    """SIGTERM a process group, SIGKILL what remains after ``grace`` s.

    Returns True if anything was alive.
    """
    if not _group_alive(pgid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------

_apt_updated = False


def _apt_install(packages: Sequence[str]) -> None:
    global _apt_updated
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        _run(["apt-get", "update", "-q"], env=env)
        _apt_updated = True
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)


def _binfmt_dir() -> Path:
    return Path("/proc/sys/fs/binfmt_misc")


def _aarch64_handler_enabled() -> bool:
    try:
        return (_binfmt_dir() / "qemu-aarch64").read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _register_binfmt_from_conf() -> None:
    """Register qemu-aarch64 from the systemd binfmt.d file (no daemon here)."""
    for conf in (
        Path("/usr/lib/binfmt.d/qemu-aarch64.conf"),
        Path("/etc/binfmt.d/qemu-aarch64.conf"),
    ):
        if conf.exists():
            line = conf.read_text().strip().splitlines()[-1]
            (_binfmt_dir() / "register").write_text(line)
            return


def ensure_host_tools() -> None:
    """Install debootstrap, qemu-user-static, binfmt-support and the aarch64
    cross gcc if missing, and make sure the qemu-aarch64 binfmt handler is on."""
    _require_root("building the board root")
    if not (_binfmt_dir() / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(_binfmt_dir())])
    missing = sorted(
        {
            pkg
            for exe, pkg in HOST_TOOLS.items()
            if (not os.path.exists(exe) if exe.startswith("/") else shutil.which(exe) is None)
        }
    )
    if missing:
        _log(f"installing host packages: {' '.join(missing)}")
        _apt_install(missing)
    if not _aarch64_handler_enabled():
        _run(["update-binfmts", "--enable", "qemu-aarch64"], check=False)
    if not _aarch64_handler_enabled():
        _register_binfmt_from_conf()
    if not _aarch64_handler_enabled():
        raise BoardError("could not enable the qemu-aarch64 binfmt_misc handler")
    flags = (_binfmt_dir() / "qemu-aarch64").read_text()
    if "flags:" in flags and "F" not in flags.split("flags:")[1].split("\n")[0]:
        _log("warning: qemu-aarch64 handler lacks the F flag; copying qemu into the root")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == str(path) or mnt.startswith(prefix):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


def _remove_root(root: Path) -> None:
    """Delete a (possibly half-built) root, unmounting what is left mounted."""
    for mnt in _mounts_under(root):
        _run(["umount", "-l", mnt], check=False)
    left = _mounts_under(root)
    if left:
        raise BoardError(f"refusing to delete {root}: still mounted: {left}")
    if root.exists():
        _run(["rm", "-rf", "--one-file-system", str(root)])


def _board_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": BOARD_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONPATH": SITE_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if extra:
        env.update(extra)
    return env


def _build_debootstrap(root: Path, mirror: str) -> dict[str, Any]:
    t0 = time.monotonic()
    _remove_root(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "debootstrap",
            f"--arch={ARCH}",
            "--foreign",
            f"--variant={VARIANT}",
            f"--include={','.join(DEB_INCLUDE)}",
            SUITE,
            str(root),
            mirror,
        ]
    )
    t1 = time.monotonic()
    qemu = shutil.which("qemu-aarch64-static")
    if qemu:  # harmless with the F flag, needed without it
        shutil.copy2(qemu, root / "usr/bin/qemu-aarch64-static")
    _run(
        ["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"],
        env=dict(_board_env(), DEBIAN_FRONTEND="noninteractive"),
    )
    t2 = time.monotonic()
    for mnt in _mounts_under(root):  # second stage should unmount; be sure
        _run(["umount", "-l", mnt], check=False)
    out = (
        _run(
            [
                "chroot",
                str(root),
                "python3",
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2])",
            ],
            env=_board_env(),
            capture=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    if out != BOARD_PYTHON:
        raise BoardError(f"board python is {out}, recipe expects {BOARD_PYTHON}")
    return {"first_stage_s": round(t1 - t0, 1), "second_stage_s": round(t2 - t1, 1), "python": out}


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def _pip_platform_args() -> list[str]:
    return [
        "--platform",
        PIP_PLATFORM,
        "--python-version",
        BOARD_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        "cp" + BOARD_PYTHON.replace(".", ""),
        "--only-binary=:all:",
    ]


def _build_site(root: Path, with_optional: bool) -> dict[str, Any]:
    t0 = time.monotonic()
    site = root / SITE_DIR.lstrip("/")
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if site.exists():
        shutil.rmtree(site)
    _run(_pip("download", "-q", "-d", str(wheels), *_pip_platform_args(), *PIP_REQUIREMENTS))
    reqs = list(PIP_REQUIREMENTS)
    optional_ok: list[str] = []
    if with_optional:
        for pkg in PIP_OPTIONAL:
            res = _run(
                _pip(
                    "download",
                    "-q",
                    "-d",
                    str(wheels),
                    *_pip_platform_args(),
                    *PIP_REQUIREMENTS,
                    pkg,
                ),
                check=False,
                capture=True,
            )
            if res.returncode == 0:
                optional_ok.append(pkg)
            else:
                _log(f"optional {pkg} not available for the board; skipped")
    t1 = time.monotonic()
    install = [
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(wheels),
        "--target",
        str(site),
        *_pip_platform_args(),
    ]
    res = _run(_pip(*install, *reqs, *optional_ok), check=False)
    if res.returncode != 0 and optional_ok:
        _log("install with optional packages failed; retrying without them")
        optional_ok = []
        shutil.rmtree(site, ignore_errors=True)
        res = _run(_pip(*install, *reqs), check=False)
    if res.returncode != 0:
        raise BoardError("pip could not install the board's Python packages")
    t2 = time.monotonic()
    probe = (
        "import json, numpy, tvm, tvm_ffi\n"
        "v = {'tvm': tvm.__version__, 'numpy': numpy.__version__, 'tvm_ffi': tvm_ffi.__version__}\n"
        "try:\n import onnxruntime; v['onnxruntime'] = onnxruntime.__version__\n"
        "except Exception: pass\n"
        "print(json.dumps(v))\n"
    )
    out = _run(["chroot", str(root), "python3", "-c", probe], env=_board_env(), capture=True)
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    t3 = time.monotonic()
    if not versions.get("numpy", "0").startswith("2."):
        raise BoardError(f"board numpy is {versions.get('numpy')}, expected 2.x")
    return {
        "download_s": round(t1 - t0, 1),
        "install_s": round(t2 - t1, 1),
        "probe_s": round(t3 - t2, 1),
        "versions": versions,
        "optional": optional_ok,
    }


def _du_mb(path: Path) -> int:
    res = subprocess.run(["du", "-sxm", str(path)], capture_output=True, text=True)
    try:
        return int(res.stdout.split()[0])
    except (IndexError, ValueError):
        return -1


def build_root(
    force: bool = False, with_onnxruntime: bool = True, mirror: str | None = None
) -> dict[str, Any]:
    """Build (once) and cache the emulated arm64 root; return the build marker.

    Stages whose marker matches the recipe are skipped, so a build that was
    interrupted resumes from the first unfinished stage (which is redone from
    scratch). ``force`` rebuilds everything.
    """
    _require_root("building the board root")
    mirror = mirror or os.environ.get("HWNAS_EDGE_MIRROR", DEFAULT_MIRROR)
    with _lock():
        if not force and root_is_built():
            marker = _read_json(_build_marker()) or {}
            if marker.get("hash") == recipe_hash(with_onnxruntime) or not with_onnxruntime:
                _log(f"board root already built at {root_dir()} (recipe {marker.get('hash')})")
                return marker
        if farm_status().get("running"):
            raise FarmRunning(
                "the board root needs (re)building but a farm is running; stop it first"
            )
        t0 = time.monotonic()
        root = root_dir()
        with contextlib.suppress(FileNotFoundError):
            _build_marker().unlink()
        if force:
            shutil.rmtree(cache_dir() / "stages", ignore_errors=True)
        ensure_host_tools()
        t_host = time.monotonic() - t0

        deb_hash = _hash(_debootstrap_recipe())
        deb_info = (_read_json(_stage_marker("debootstrap")) or {}).get("info", {})
        if _stage_done("debootstrap", deb_hash) and (root / "usr/bin/python3").exists():
            _log("stage debootstrap: done already")
        else:
            _log(f"stage debootstrap: building {SUITE}/{ARCH} root in {root} (8-10 min on 2 cores)")
            with contextlib.suppress(FileNotFoundError):
                _stage_marker("site").unlink()
            deb_info = _build_debootstrap(root, mirror)
            _write_json(_stage_marker("debootstrap"), {"hash": deb_hash, "info": deb_info})
            _log(f"stage debootstrap: done {deb_info}")

        site_hash = _hash(_site_recipe(with_onnxruntime))
        site_info = (_read_json(_stage_marker("site")) or {}).get("info", {})
        if _stage_done("site", site_hash) and (root / SITE_DIR.lstrip("/") / "tvm").is_dir():
            _log("stage site: done already")
        else:
            _log(f"stage site: installing board Python packages into {SITE_DIR}")
            site_info = _build_site(root, with_onnxruntime)
            _write_json(_stage_marker("site"), {"hash": site_hash, "info": site_info})
            _log(f"stage site: done {site_info}")

        marker = {
            "hash": recipe_hash(with_onnxruntime),
            "recipe_version": RECIPE_VERSION,
            "root": str(root),
            "site": SITE_DIR,
            "suite": SUITE,
            "arch": ARCH,
            "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_s": round(time.monotonic() - t0, 1),
            "host_tools_s": round(t_host, 1),
            "debootstrap": deb_info,
            "site_packages": site_info,
            "size_mb": _du_mb(root),
        }
        _write_json(_build_marker(), marker)
        _log(f"board root built in {marker['build_s']} s, {marker['size_mb']} MB")
        return marker


# --------------------------------------------------------------------------
# tracker protocol (stdlib only: status works without importing tvm)
# --------------------------------------------------------------------------


def _recvall(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("tracker closed the connection")
        buf += chunk
    return buf


def tracker_summary(
    port: int = DEFAULT_TRACKER_PORT, host: str = LOOPBACK, timeout: float = 5.0
) -> dict[str, Any]:
    """The tracker's summary: ``{"queue_info": {key: {"free", "pending"}},
    "server_info": [{"key": "server:KEY", "addr": [host, port]}, ...]}``."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("<i", _TRACKER_MAGIC))
        if struct.unpack("<i", _recvall(sock, 4))[0] != _TRACKER_MAGIC:
            raise BoardError(f"{host}:{port} is not a TVM RPC tracker")
        data = json.dumps([_TRACKER_SUMMARY]).encode()
        sock.sendall(struct.pack("<i", len(data)) + data)
        size = struct.unpack("<i", _recvall(sock, 4))[0]
        reply = json.loads(_recvall(sock, size).decode())
    if reply[0] != _TRACKER_SUCCESS:
        raise BoardError(f"tracker refused summary: {reply}")
    return reply[1]


def _free_for(summary: dict[str, Any], key: str) -> int:
    return int(summary.get("queue_info", {}).get(key, {}).get("free", 0))


# --------------------------------------------------------------------------
# farm
# --------------------------------------------------------------------------


def _load_state() -> dict[str, Any] | None:
    return _read_json(_state_path())


def _alive(proc: dict[str, Any]) -> bool:
    return bool(proc.get("pgid")) and bool(_group_alive(int(proc["pgid"])))


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return {"pid": proc.pid, "pgid": proc.pid, "log": str(log), "cmd": cmd}


def start_farm(
    n: int = 2,
    key: str = DEFAULT_KEY,
    tracker_port: int = DEFAULT_TRACKER_PORT,
    base_port: int = DEFAULT_BASE_PORT,
    timeout: float = 300.0,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Start a tracker on the host and ``n`` rpc_servers in the emulated root.

    Waits until the tracker reports ``n`` free servers for ``key`` and
    returns the state written to ``farm.json``. Raises ``BoardNotBuilt`` if
    the root is missing, ``FarmRunning`` if a farm is already up, and
    ``BoardError`` on port clashes or when the boards do not come up within
    ``timeout`` seconds (the farm is stopped again in that case).
    """
    if n < 1:
        raise BoardError("need at least one board")
    with _lock():  # one start (or build) at a time
        return _start_farm_locked(n, key, tracker_port, base_port, timeout, num_threads)


def _start_farm_locked(
    n: int, key: str, tracker_port: int, base_port: int, timeout: float, num_threads: int | None
) -> dict[str, Any]:
    if not root_is_built():
        raise BoardNotBuilt(
            f"the emulated board root is not built at {root_dir()}; "
            f"run: python {Path(__file__).name} build"
        )
    _require_root("starting emulated boards (chroot)")
    state = _load_state()
    if state:
        live = [p for p in [state.get("tracker", {}), *state.get("boards", [])] if _alive(p)]
        if live:
            raise FarmRunning(
                f"a farm is already running (tracker port "
                f"{state.get('tracker', {}).get('port')}); stop it first"
            )
        _state_path().unlink()
    board_ports = [base_port + i for i in range(n)]
    if tracker_port in board_ports:
        raise BoardError(f"tracker port {tracker_port} collides with board ports {board_ports}")
    busy = [p for p in [tracker_port, *board_ports] if not _port_free(p)]
    if busy:
        raise BoardError(f"ports already in use on {LOOPBACK}: {busy}")

    t0 = time.monotonic()
    logs = cache_dir() / "logs"
    host_env = dict(os.environ)
    tracker = _spawn(
        [
            sys.executable,
            "-m",
            "tvm.exec.rpc_tracker",
            "--host",
            LOOPBACK,
            "--port",
            str(tracker_port),
            "--port-end",
            str(tracker_port + 1),
        ],
        logs / "tracker.log",
        host_env,
    )
    tracker.update(host=LOOPBACK, port=tracker_port)
    state = {
        "version": 1,
        "root": str(root_dir()),
        "key": key,
        "tracker": tracker,
        "boards": [],
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_json(_state_path(), state)
    try:
        deadline = time.monotonic() + min(timeout, 60.0)
        while True:
            try:
                tracker_summary(tracker_port)
                break
            except (OSError, BoardError):
                if not _alive(tracker):
                    raise BoardError(f"tracker exited; see {tracker['log']}") from None
                if time.monotonic() > deadline:
                    raise BoardError(f"tracker did not answer; see {tracker['log']}") from None
                time.sleep(0.3)
        t_tracker = time.monotonic() - t0
        _log(f"tracker up on {LOOPBACK}:{tracker_port} in {t_tracker:.1f} s")

        extra = {"TVM_NUM_THREADS": str(num_threads)} if num_threads else None
        for i, port in enumerate(board_ports):
            # The board's server runs code that clients upload: chroot as root, then drop to
            # an unprivileged user, so a client cannot act as root on this machine.
            cmd = [
                "chroot",
                f"--userspec={BOARD_USER}",
                str(root_dir()),
                "python3",
                "-m",
                "tvm.exec.rpc_server",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--port-end",
                str(port + 1),
                "--tracker",
                f"{LOOPBACK}:{tracker_port}",
                "--key",
                key,
            ]
            board = _spawn(
                cmd, logs / f"board-{i}.log", _board_env({"HOME": "/tmp", **(extra or {})})
            )
            board.update(index=i, port=port, key=key)
            state["boards"].append(board)
        _write_json(_state_path(), state)

        deadline = time.monotonic() + timeout
        free = 0
        while True:
            free = _free_for(tracker_summary(tracker_port), key)
            if free >= n:
                break
            dead = [b["index"] for b in state["boards"] if not _alive(b)]
            if dead:
                raise BoardError(
                    f"board(s) {dead} exited during start; see "
                    f"{[state['boards'][d]['log'] for d in dead]}"
                )
            if time.monotonic() > deadline:
                raise BoardError(
                    f"only {free}/{n} boards registered for {key!r} after "
                    f"{timeout:.0f} s; see logs in {logs}"
                )
            time.sleep(1.0)
    except BaseException:
        _log("start failed; stopping what was started")
        stop_farm()
        raise
    state["start_s"] = round(time.monotonic() - t0, 1)
    _write_json(_state_path(), state)
    _log(f"{n} board(s) registered as {key!r} in {state['start_s']} s")
    return state


def farm_status() -> dict[str, Any]:
    """What is running: tracker address, boards alive, free/pending per key."""
    state = _load_state()
    if not state:
        return {"running": False, "built": root_is_built(), "root": str(root_dir())}
    tracker = state.get("tracker", {})
    boards = [
        {
            "index": b["index"],
            "port": b["port"],
            "pid": b["pid"],
            "alive": _alive(b),
            "stopped": bool(b.get("stopped")),
            "log": b["log"],
        }
        for b in state.get("boards", [])
    ]
    out: dict[str, Any] = {
        "running": _alive(tracker),
        "built": root_is_built(),
        "root": state.get("root"),
        "key": state.get("key"),
        "tracker": {
            "host": tracker.get("host"),
            "port": tracker.get("port"),
            "pid": tracker.get("pid"),
            "alive": _alive(tracker),
        },
        "boards": boards,
        "boards_alive": sum(b["alive"] for b in boards),
        "started_at": state.get("started_at"),
        "start_s": state.get("start_s"),
    }
    if out["running"]:
        try:
            summary = tracker_summary(int(tracker["port"]), tracker.get("host", LOOPBACK))
            out["queue_info"] = summary.get("queue_info", {})
            out["servers"] = summary.get("server_info", [])
        except (OSError, BoardError) as exc:
            out["tracker_error"] = str(exc)
    return out


def stop_board(index: int) -> bool:
    """Kill board ``index`` (its whole process group). True if it was alive."""
    state = _load_state()
    if not state:
        raise BoardError("no farm is running")
    for board in state.get("boards", []):
        if board["index"] == index:
            was = _kill_group(int(board["pgid"]))
            board["stopped"] = True
            _write_json(_state_path(), state)
            _log(f"board {index} (pid {board['pid']}) {'stopped' if was else 'was not running'}")
            return was
    raise BoardError(f"no board {index} in the farm (have {len(state.get('boards', []))})")


def stop_farm() -> dict[str, Any]:
    """Stop every board and the tracker recorded in the state file."""
    state = _load_state()
    if not state:
        return {"stopped": [], "note": "no farm state"}
    stopped = []
    for board in state.get("boards", []):
        if _kill_group(int(board["pgid"])):
            stopped.append(f"board-{board['index']}")
    tracker = state.get("tracker")
    if tracker and _kill_group(int(tracker["pgid"])):
        stopped.append("tracker")
    left = [p for p in [tracker or {}, *state.get("boards", [])] if _alive(p)]
    if left:
        raise BoardError(f"processes survived SIGKILL: {[p['pid'] for p in left]}")
    with contextlib.suppress(FileNotFoundError):
        _state_path().unlink()
    _log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return {"stopped": stopped}


def run_on_board(
    cmd: Sequence[str],
    workdir: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    capture: bool = False,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` inside the emulated board (chroot, board PYTHONPATH set).

    With ``workdir`` the host directory is copied into the board's /tmp and
    the command runs there (the copy is removed afterwards); relative paths
    in ``cmd`` therefore refer to files of ``workdir``.
    """
    if not root_is_built():
        raise BoardNotBuilt(f"the emulated board root is not built at {root_dir()}")
    _require_root("running on the emulated board (chroot)")
    root = root_dir()
    inner_dir = None
    argv = [str(c) for c in cmd]
    if workdir is not None:
        inner_dir = f"/tmp/hwnas-run-{uuid.uuid4().hex[:10]}"
        shutil.copytree(workdir, root / inner_dir.lstrip("/"), symlinks=True)
        argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', inner_dir, *argv]
    try:
        return subprocess.run(
            ["chroot", str(root), *argv],
            env=_board_env(env),
            timeout=timeout,
            check=check,
            text=True,
            capture_output=capture,
        )
    finally:
        if inner_dir:
            shutil.rmtree(root / inner_dir.lstrip("/"), ignore_errors=True)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def _print_status(st: dict[str, Any]) -> None:
    if "tracker" not in st:
        print(f"farm: not running (root {'built' if st['built'] else 'NOT built'}: {st['root']})")
        return
    t = st["tracker"]
    print(f"tracker: {t['host']}:{t['port']} pid {t['pid']} {'alive' if t['alive'] else 'DEAD'}")
    print(f"boards alive: {st['boards_alive']}/{len(st['boards'])} (key {st['key']!r})")
    for b in st["boards"]:
        tag = "alive" if b["alive"] else ("stopped" if b["stopped"] else "DEAD")
        print(f"  board {b['index']}: port {b['port']} pid {b['pid']} {tag}")
    for key, q in sorted(st.get("queue_info", {}).items()):
        print(f"  key {key}: free {q.get('free', 0)} pending {q.get('pending', 0)}")
    if "tracker_error" in st:
        print(f"  tracker error: {st['tracker_error']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-board", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build and cache the arm64 board root")
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--no-onnxruntime", action="store_true", help="skip the optional onnxruntime")
    p.add_argument("--mirror", default=None, help=f"Debian mirror (default {DEFAULT_MIRROR})")
    p = sub.add_parser("start", help="start a tracker and N emulated boards")
    p.add_argument("--boards", type=int, default=2)
    p.add_argument("--key", default=DEFAULT_KEY)
    p.add_argument("--tracker-port", type=int, default=DEFAULT_TRACKER_PORT)
    p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the boards")
    p.add_argument("--threads", type=int, default=None, help="TVM_NUM_THREADS on the boards")
    p = sub.add_parser("status", help="show the farm")
    p.add_argument("--json", action="store_true")
    sub.add_parser("stop", help="stop the tracker and all boards")
    p = sub.add_parser("stop-board", help="kill one board")
    p.add_argument("index", type=int)
    p = sub.add_parser("run", help="run a command inside the emulated board")
    p.add_argument("--workdir", default=None, help="host dir copied to the board and used as cwd")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("path", help="print the board root directory")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            info = build_root(
                force=args.force, with_onnxruntime=not args.no_onnxruntime, mirror=args.mirror
            )
            print(json.dumps(info, indent=2))
        elif args.command == "start":
            state = start_farm(
                args.boards,
                args.key,
                args.tracker_port,
                args.base_port,
                timeout=args.timeout,
                num_threads=args.threads,
            )
            print(
                f"tracker {LOOPBACK}:{args.tracker_port}, {args.boards} board(s) as "
                f"{args.key!r}, up in {state['start_s']} s"
            )
        elif args.command == "status":
            st = farm_status()
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
        elif args.command == "stop":
            stop_farm()
        elif args.command == "stop-board":
            stop_board(args.index)
        elif args.command == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("run: give a command after --")
            env = dict(kv.split("=", 1) for kv in args.env)
            return run_on_board(cmd, workdir=args.workdir, env=env).returncode
        elif args.command == "path":
            print(root_dir())
            return 0 if root_is_built() else 2
    except BoardNotBuilt as exc:
        print(f"edge-board: {exc}", file=sys.stderr)
        return 2
    except (BoardError, subprocess.CalledProcessError) as exc:
        print(f"edge-board: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
