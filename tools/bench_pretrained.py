"""Benchmark of pretrained supernets and int8: MiniLM wrapped and fine-tuned, its fidelity/latency front, int8 vs fp32.

Usage: .venv/bin/python tools/bench_pretrained.py [--steps 40] [--budget 10] [--json out.json]
Prints the markdown tables of docs/PERFORMANCE.md's "Pretrained supernets and int8"
section. Latencies: onnxruntime, 1 thread, batch 1 (1x128 tokens for MiniLM), median of the protocol.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TARGET = "onnxruntime:cpu?threads=1"


def cpu_facts() -> dict[str, Any]:
    """The CPU model and the ISA extensions int8 kernels use (from lscpu)."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
    return {
        "model": fields.get("Model name", "").strip(),
        "cpus": fields.get("CPU(s)", "").strip(),
        "flags": [f for f in wanted if f in flags],
    }


def amx_permitted() -> bool | None:
    """Has this process asked the kernel for AMX tile state (what ONNX Runtime's MLAS does before AMX kernels)?"""
    if platform.machine() != "x86_64":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.c_uint64(0)
    arch_get_xcomp_perm, sys_arch_prctl, xtiledata = 0x1022, 158, 1 << 18
    if libc.syscall(sys_arch_prctl, arch_get_xcomp_perm, ctypes.byref(mask)) != 0:
        return None
    return bool(mask.value & xtiledata)


def timed(step: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = step()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def front(rows: list[dict[str, Any]], quality: str) -> list[dict[str, Any]]:
    """Rows no other row beats in both quality (higher) and latency (lower), by latency."""
    kept = [
        r
        for r in rows
        if not any(
            o[quality] >= r[quality]
            and o["latency"] <= r["latency"]
            and (o[quality], o["latency"]) != (r[quality], r["latency"])
            for o in rows
        )
    ]
    return sorted(kept, key=lambda r: r["latency"])


def evaluate(loaded: Any, metric: str, subnets: list[Any], repeats: int) -> list[dict[str, Any]]:
    """fp32 and int8 quality and latency of each architecture, through the search's own providers."""
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.search_core.precision import precision_space
    from hwnas.search_core.subnet_objectives import supernet_providers

    providers, _ = supernet_providers(
        loaded,
        [metric, "latency"],
        TARGET,
        MeasurementProtocol(repeats=repeats),
        precisions=("fp32", "int8"),
    )
    space = precision_space(loaded.supernet.space, ("fp32", "int8"))
    rows = []
    for arch in subnets:
        row: dict[str, Any] = {"key": arch.key, "config": arch.to_dict()}
        for precision in ("fp32", "int8"):
            subnet = space.subnet(arch.to_dict() | {"precision": precision})
            values: dict[str, float] = {}
            for provider in providers:
                values.update(provider.measure(subnet).values)
            row[precision] = {"quality": values[metric], "latency": values["latency"]}
        rows.append(row)
        print(
            f"  {arch.key}: fp32 {row['fp32']['quality']:.4f} / {row['fp32']['latency']:.3f} ms, "
            f"int8 {row['int8']['quality']:.4f} / {row['int8']['latency']:.3f} ms",
            flush=True,
        )
    return rows


def architectures(space: Any, budget: int, seed: int) -> list[Any]:
    """Largest, smallest and ``budget - 2`` seeded random architectures, distinct."""
    rng = np.random.default_rng(seed)
    chosen = {s.key: s for s in (space.largest(), space.smallest())}
    while len(chosen) < budget:
        sample = space.sample(rng)
        chosen.setdefault(sample.key, sample)
    return list(chosen.values())


def minilm(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from hwnas.model.checkpoint import save_checkpoint
    from hwnas.model.loader import load_supernet
    from hwnas.model.pretrained import finetune_pretrained, load_pretrained
    from hwnas.model.text_data import generated_sentences
    from hwnas.model.training import TrainingConfig

    torch.set_num_threads(2)
    wrapped, load_s, _ = timed(lambda: load_pretrained("elastic-bert", "all-MiniLM-L6-v2"))
    texts = generated_sentences(64, seed=99)
    reference = SentenceTransformer(wrapped.source["folder"], device="cpu")
    expected = torch.tensor(reference.encode(texts, convert_to_numpy=True))
    with torch.no_grad():
        largest = wrapped.supernet.extract(wrapped.module, wrapped.supernet.space.largest())
        difference = float((largest(wrapped.tokenizer(texts)) - expected).abs().max())
    print(f"MiniLM largest subnet vs sentence-transformers: max abs diff {difference:.3g}")
    config = TrainingConfig(
        epochs=args.epochs, batch_size=32, lr=wrapped.lr, max_steps=args.steps, seed=0
    )
    tuned, tune_s, tune_cpu = timed(lambda: finetune_pretrained(wrapped, "generated", config))
    print(
        f"fine-tuning: {tuned.result.steps} steps in {tune_s:.0f} s wall / {tune_cpu:.0f} s CPU "
        f"(smallest fidelity {tuned.result.smallest_accuracy:.4f}, largest {tuned.result.largest_accuracy:.4f})",
        flush=True,
    )
    checkpoint = workdir / "minilm.pt"
    save_checkpoint(
        checkpoint,
        tuned.pretrained.supernet,
        tuned.pretrained.module,
        data=tuned.data,
        result=tuned.result,
        pretrained=tuned.summary,
    )
    loaded = load_supernet(checkpoint=checkpoint)
    rows = evaluate(
        loaded, "fidelity", architectures(loaded.supernet.space, args.budget, 0), args.repeats
    )
    return {
        "largest_vs_sentence_transformers": difference,
        "wrap_seconds": load_s,
        "finetune": {
            "steps": tuned.result.steps,
            "batch": config.batch_size,
            "wall_s": tune_s,
            "cpu_s": tune_cpu,
            "epochs": [e.__dict__ for e in tuned.result.epochs],
            "importance": tuned.summary["importance"]["layer_order"],
        },
        "rows": rows,
    }


def embedded_default(args: argparse.Namespace) -> dict[str, Any]:
    from hwnas.model.loader import load_supernet

    loaded = load_supernet()
    rows = evaluate(
        loaded, "accuracy", architectures(loaded.supernet.space, args.budget, 0), args.repeats
    )
    return {"supernet": loaded.supernet.name, "rows": rows}


def table(rows: list[dict[str, Any]], quality: str) -> str:
    flat = [
        {"key": r["key"], quality: r["fp32"]["quality"], "latency": r["fp32"]["latency"], **r}
        for r in rows
    ]
    lines = [
        f"| subnet | fp32 {quality} | fp32 ms | int8 {quality} | int8 ms | int8/fp32 latency | {quality} change |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    on_front = {r["key"] for r in front(flat, quality)}
    for r in sorted(rows, key=lambda r: r["fp32"]["latency"]):
        fp, q = r["fp32"], r["int8"]
        mark = " (front)" if r["key"] in on_front else ""
        lines.append(
            f"| {r['key']}{mark} | {fp['quality']:.4f} | {fp['latency']:.3f} | {q['quality']:.4f} | "
            f"{q['latency']:.3f} | {q['latency'] / fp['latency']:.2f} | {q['quality'] - fp['quality']:+.4f} |"
        )
    ratios = [r["int8"]["latency"] / r["fp32"]["latency"] for r in rows]
    changes = [r["int8"]["quality"] - r["fp32"]["quality"] for r in rows]
    lines.append(
        f"\nint8/fp32 latency: median {np.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); "
        f"{quality} change: median {np.median(changes):+.4f} (worst {min(changes):+.4f})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="MiniLM fine-tuning steps (batch 32)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--budget", type=int, default=10, help="architectures per supernet")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per latency")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="keep the fine-tuned MiniLM checkpoint in this folder"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    facts = cpu_facts()
    print(f"CPU: {facts['model']} ({facts['cpus']} CPUs), flags: {', '.join(facts['flags'])}")
    results: dict[str, Any] = {"cpu": facts, "target": TARGET}
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_minilm:
            results["minilm"] = minilm(args, args.keep or Path(folder))
        results["default"] = embedded_default(args)
    # Measurements run in a worker process; ask in this one, after an int8 run of its own.
    results["amx_requested_in_process"] = _amx_after_int8_run()
    print()
    if "minilm" in results:
        m = results["minilm"]
        rows = m["rows"]
        largest, smallest = rows[0], rows[1]
        print(
            f"MiniLM largest vs original: max abs diff {m['largest_vs_sentence_transformers']:.3g}"
        )
        print(
            f"fine-tuning: {m['finetune']['steps']} steps (batch 32) in {m['finetune']['wall_s']:.0f} s wall, "
            f"{m['finetune']['cpu_s']:.0f} s CPU on {facts['cpus']} cores"
        )
        print(
            f"smallest subnet speed-up over the largest (fp32): "
            f"{largest['fp32']['latency'] / smallest['fp32']['latency']:.2f}x; int8 smallest vs fp32 largest: "
            f"{largest['fp32']['latency'] / smallest['int8']['latency']:.2f}x\n"
        )
        print(table(rows, "fidelity"))
        print()
    print(table(results["default"]["rows"], "accuracy"))
    print(
        f"\nAMX tile state requested after an int8 run in this process: {results['amx_requested_in_process']}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


def _amx_after_int8_run() -> bool | None:
    """Run one int8 MatMul through onnxruntime here, then ask whether AMX state was requested."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [64, 256])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [64, 256])
    weight = helper.make_tensor(
        "w", TensorProto.INT8, [256, 256], np.ones((256, 256), np.int8).tobytes(), raw=True
    )
    node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
    model = helper.make_model(
        helper.make_graph([node], "int8", [a], [y], [weight]),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session.run(None, {"a": np.ones((64, 256), np.uint8)})
    return amx_permitted()


if __name__ == "__main__":
    main()
