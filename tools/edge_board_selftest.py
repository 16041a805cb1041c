#!/usr/bin/env python3
"""End-to-end check of the emulated aarch64 board farm (tools/edge_board.py).

Builds the board root (cached after the first time), starts a tracker and two
emulated boards, cross-compiles a tiny Relax module for aarch64, runs it on a
board through the tracker (stateful VM calls, compared with numpy, timed with
``time_evaluator``), kills one board and checks the tracker drops it, runs
once more on the survivor, then stops everything and checks that no process
or port is left. Prints figures; exits non-zero on any failure.

Run as root with the host venv: ``.venv/bin/python tools/edge_board_selftest.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edge_board as eb  # noqa: E402

TARGET = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)
    print(f"ok: {msg}", flush=True)


def _wait_free(port: int, key: str, want: int, timeout: float) -> tuple[int, int, float]:
    """Poll the tracker until ``want`` free servers and ``want`` registered
    servers are seen for ``key``; return (free, servers, seconds)."""
    t0 = time.monotonic()
    while True:
        s = eb.tracker_summary(port)
        free = eb._free_for(s, key)
        servers = sum(1 for i in s.get("server_info", []) if i.get("key") == f"server:{key}")
        if (free == want and servers == want) or time.monotonic() - t0 > timeout:
            return free, servers, time.monotonic() - t0
        time.sleep(0.5)


def _build_module(workdir: Path):
    import numpy as np
    import tvm
    from tvm.script import ir as I
    from tvm.script import relax as R
    from tvm.support import cc

    @I.ir_module
    class Tiny:
        @R.function
        def main(x: R.Tensor((4, 32), "float32"), w: R.Tensor((32, 16), "float32")):
            with R.dataflow():
                y = R.matmul(x, w)
                z = R.nn.relu(y + R.const(0.5, "float32"))
                R.output(z)
            return z

    target = tvm.target.Target(TARGET)
    t0 = time.monotonic()
    ex = tvm.compile(Tiny, target=target)
    lib = workdir / "tiny_aarch64.so"
    ex.export_library(str(lib), fcompile=cc.cross_compiler("aarch64-linux-gnu-gcc"))
    compile_s = time.monotonic() - t0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32), dtype=np.float32)
    w = rng.standard_normal((32, 16), dtype=np.float32)
    ref = np.maximum(x @ w + 0.5, 0.0)
    return lib, x, w, ref, compile_s


def _run_remote(port: int, key: str, lib: Path, x, w, ref, repeat: int = 5) -> dict:
    import numpy as np
    import tvm
    from tvm import relax

    t0 = time.monotonic()
    remote = tvm.rpc.connect_tracker(eb.LOOPBACK, port).request(
        key, priority=1, session_timeout=300
    )
    t_req = time.monotonic() - t0
    remote.upload(str(lib))
    rlib = remote.load_module(lib.name)
    dev = remote.cpu()
    vm = relax.VirtualMachine(rlib, dev)
    t_load = time.monotonic() - t0 - t_req
    vm.set_input("main", tvm.runtime.tensor(x, dev), tvm.runtime.tensor(w, dev))
    vm.invoke_stateful("main")
    out = vm.get_outputs("main").numpy()
    err = float(np.max(np.abs(out - ref)))
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeat)
    res = timer("main")
    del vm, rlib, remote  # closes the session; the board re-registers
    return {
        "request_s": round(t_req, 2),
        "upload_load_s": round(t_load, 2),
        "max_abs_err": err,
        "latency_ms_median": round(float(res.median) * 1e3, 4),
        "latency_ms_mean": round(float(res.mean) * 1e3, 4),
        "latency_ms_all": [round(float(r) * 1e3, 4) for r in res.results],
    }


def _leftovers(state: dict) -> list[str]:
    pgids = {int(p["pgid"]) for p in [state["tracker"], *state["boards"]]}
    left = []
    for pid, _ppid, pgid, st in eb._proc_table():
        if st == "Z":
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if (
            pgid in pgids
            or "tvm.exec.rpc_" in cmd
            or ("popen_worker" in cmd and eb.SITE_DIR in cmd)
        ):
            left.append(f"{pid} {cmd.strip()}")
    return left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key", default=eb.DEFAULT_KEY)
    ap.add_argument("--tracker-port", type=int, default=eb.DEFAULT_TRACKER_PORT)
    ap.add_argument("--base-port", type=int, default=eb.DEFAULT_BASE_PORT)
    ap.add_argument("--boards", type=int, default=2)
    args = ap.parse_args()
    key, port, n = args.key, args.tracker_port, args.boards
    figures: dict = {}

    if eb.farm_status().get("running"):
        print("a farm is already running; stop it first (edge_board.py stop)", file=sys.stderr)
        return 3

    t0 = time.monotonic()
    marker = eb.build_root()
    figures["build_call_s"] = round(time.monotonic() - t0, 1)
    figures["build_s_recorded"] = marker.get("build_s")
    figures["root_size_mb"] = marker.get("size_mb")
    figures["board_versions"] = marker.get("site_packages", {}).get("versions")
    _check(eb.root_is_built(), "board root is built")

    state = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lib, x, w, ref, figures["cross_compile_s"] = _build_module(Path(tmp))
            _check(lib.stat().st_size > 0, f"cross-compiled {lib.name}")

            t0 = time.monotonic()
            state = eb.start_farm(n, key, port, base_port=args.base_port)
            figures["start_s"] = round(time.monotonic() - t0, 1)
            st = eb.farm_status()
            free = st.get("queue_info", {}).get(key, {}).get("free")
            _check(
                st["boards_alive"] == n and free == n,
                f"status: {n} boards alive, {free} free for {key!r}",
            )

            r = _run_remote(port, key, lib, x, w, ref)
            figures["remote"] = r
            _check(
                r["max_abs_err"] < 1e-4,
                f"remote output matches numpy (max err {r['max_abs_err']:.2e})",
            )

            free, servers, waited = _wait_free(port, key, n, 60)
            _check(free == n, f"all {n} boards free again after the session ({waited:.1f} s)")

            t0 = time.monotonic()
            _check(eb.stop_board(n - 1), f"stop-board {n - 1}")
            free, servers, waited = _wait_free(port, key, n - 1, 30)
            figures["tracker_drop_s"] = round(time.monotonic() - t0, 2)
            _check(
                free == n - 1 and servers == n - 1,
                f"tracker dropped the board: free {free}, servers {servers}",
            )
            st = eb.farm_status()
            _check(st["boards_alive"] == n - 1, f"status shows {st['boards_alive']} board(s) alive")

            if n > 1:
                r2 = _run_remote(port, key, lib, x, w, ref, repeat=3)
                figures["remote_after_kill"] = r2
                _check(r2["max_abs_err"] < 1e-4, "surviving board still runs the module")

            t0 = time.monotonic()
            board_out = eb.run_on_board(
                [
                    "python3",
                    "-c",
                    "import platform, numpy; print(platform.machine(), numpy.__version__)",
                ],
                capture=True,
            )
            figures["run_on_board_s"] = round(time.monotonic() - t0, 1)
            _check(
                board_out.returncode == 0 and board_out.stdout.startswith("aarch64"),
                f"run_on_board: {board_out.stdout.strip()}",
            )
    finally:
        if state is not None:
            t0 = time.monotonic()
            eb.stop_farm()
            figures["stop_s"] = round(time.monotonic() - t0, 1)

    time.sleep(0.5)
    left = _leftovers(state)
    _check(not left, f"no farm processes left ({left or 'none'})")
    ports = [port, *[args.base_port + i for i in range(n)]]
    _check(all(eb._port_free(p) for p in ports), f"ports {ports} free again")
    _check(not eb.farm_status().get("running"), "status: not running")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - a self-test reports and fails
        import traceback

        traceback.print_exc()
        print(f"SELFTEST FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
