"""Built-in named target presets, like TVM's target tags: ``arm/rasp4b``, ``arm/rasp4-emulated``, ...

Each preset only stands for a spec string; the target kinds live in their own modules.
"""

from __future__ import annotations

from typing import Any

from hwnas import hookimpl

# name -> (spec, description)
PRESETS: dict[str, tuple[str, str]] = {
    "arm/rasp4b": (
        "tvm-rpc:aarch64@127.0.0.1:9190?key=rasp4&mcpu=cortex-a72&threads=4",
        "Raspberry Pi 4 Model B (4x Cortex-A72) reached through an RPC tracker by key rasp4",
    ),
    "arm/rasp4-emulated": (
        "tvm-rpc:aarch64@127.0.0.1:9190?key=rasp4-emulated&mcpu=cortex-a72&emulated=1",
        "emulated arm64 boards (qemu, tools/edge_board.py) by key rasp4-emulated; proves the path, not a Pi's speed",
    ),
    "cpu/ort-1t": ("onnxruntime:cpu?threads=1", "ONNX Runtime on one CPU thread"),
    "cpu/tvm-tuned": (
        "tvm:llvm?trials=32",
        "TVM for this CPU, MetaSchedule-tuned with 32 trials per task (database shared across models)",
    ),
}


@hookimpl
def hwnas_register_target_presets(register: Any) -> None:
    for name, (spec, description) in PRESETS.items():
        register(name, spec, description)
