#!/usr/bin/env python3
"""Benchmark: one candidate evaluation, stage by stage, on the old path (torch.export + dynamo) and the new one.

Stages, as a search runs them: ``ir`` (extract the subnet, build its GraphIR),
``lower`` (ONNX for onnxruntime, Relax for TVM), ``compile`` (the target's
compile without the lowering), ``verify`` (torch references of the check
inputs, a probe if the weights carry no signal, and the worker's checks),
``time`` (warm-up and timed runs in the worker), ``accuracy`` (BN
recalibration and validation on digits, where the model takes digits).
Each figure is the median over ``--repeats`` evaluations after one warm-up
evaluation (workers started, runtimes imported), as in a running search;
CPU seconds (this process plus the measurement and compile workers) beside
wall seconds. With ``--compile-in worker`` (the default, as a search runs)
lowering happens inside the compile worker and counts in ``compile``. ``whole`` is
the sum of the stages of each repeat.

    python tools/bench_eval.py [--models default mbv3-full resnet-full transformer-full]
        [--paths before after] [--target 'onnxruntime:cpu?threads=1'] [--repeats 5] [--json out.json]
    python tools/bench_eval.py --ir-methods   # export vs fx vs recording vs ops-only, CPU ms
    python tools/bench_eval.py --tvm-paths --models mbv3-tiny resnet-tiny transformer-tiny

Run it under ``flock /tmp/hwnas-bench.lock`` on a shared machine, pinned to one core (``--core``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("ir", "lower", "compile", "verify", "time", "accuracy")
#: name -> (supernet, preset or None for the embedded default, accuracy on digits?)
MODELS: dict[str, tuple[str | None, str | None, bool]] = {
    "default": (
        None,
        None,
        True,
    ),  # the embedded, trained ofa-mbv3 tiny (6-16 px): what `make demo` searches
    "mbv3-tiny": ("ofa-mbv3", "tiny", True),
    "mbv3-full": ("ofa-mbv3", "full", False),
    "resnet-tiny": ("elastic-resnet", "tiny", True),
    "resnet-full": ("elastic-resnet", "full", False),
    "transformer-tiny": ("elastic-transformer", "tiny", True),
    "transformer-full": ("elastic-transformer", "full", False),
}


@dataclass
class Clock:
    """Wall and CPU seconds per stage of one evaluation."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu


@contextlib.contextmanager
def lowering_timed(clock: Clock) -> Iterator[None]:
    """Time GraphIR.to_onnx / to_relax wherever they are called (inside a target's compile too)."""
    from hwnas.ir import GraphIR

    originals = {name: getattr(GraphIR, name) for name in ("to_onnx", "to_relax")}

    def timed(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            with clock.stage("lower"):
                return originals[name](self, *args, **kwargs)

        return method

    for name in originals:
        setattr(GraphIR, name, timed(name))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(GraphIR, name, method)


@contextlib.contextmanager
def compile_worker_cpu(pool: Any, clock: Clock, stage: str) -> Iterator[None]:
    """Add the CPU seconds the compile worker spends in the block to ``clock``'s ``stage``."""
    from hwnas.measurement.measurer import COMPILE_SLOT

    worker = pool.worker({}, COMPILE_SLOT)
    worker.start()
    before = process_cpu_seconds(worker.pid)
    try:
        yield
    finally:
        if worker.pid is not None:
            clock.add(stage, 0.0, max(0.0, process_cpu_seconds(worker.pid) - before))


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def evaluate(
    loaded: Any,
    subnet: Any,
    path: str,
    target: str,
    protocol: Any,
    pool: Any,
    accuracy_data: Any,
    compile_in: str = "worker",
) -> tuple[Clock, dict[str, Any]]:
    """One evaluation of ``subnet`` along ``path`` (``before``/``after``); its clock and facts."""
    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer

    clock = Clock()
    supernet, module = loaded.supernet, loaded.module
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        measurer = Measurer(target, protocol, cache=None, artifact_dir=Path(tmp), pool=pool)
        with clock.stage("ir"):
            if path == "before":
                static = supernet.extract(module, subnet)
                ir = GraphIR.from_module(
                    static,
                    (supernet.example_input(subnet),),
                    tracer="export",
                    lowering="torch",
                )
            else:
                ir = GraphIR.from_subnet(supernet, module, subnet)
        compile_clock = Clock()
        if compile_in == "process":  # the target's compile here: lowering timed apart
            with lowering_timed(compile_clock), compile_clock.stage("compile"):
                artifact = measurer.artifacts.compile(ir)
        else:  # as a search compiles: in the isolated compile worker (lowering happens there)
            with compile_clock.stage("compile"), compile_worker_cpu(pool, compile_clock, "compile"):
                artifact = measurer.compile(ir)
        clock.add(
            "lower", compile_clock.wall.get("lower", 0.0), compile_clock.cpu.get("lower", 0.0)
        )
        clock.add(
            "compile",
            compile_clock.wall["compile"] - compile_clock.wall.get("lower", 0.0),
            compile_clock.cpu["compile"] - compile_clock.cpu.get("lower", 0.0),
        )
        with clock.stage("verify"), compile_worker_cpu(pool, clock, "verify"):
            verification = measurer.verification(ir)
            if verification.probe is not None:
                measurer.compile(verification.probe)  # what run_isolated would compile first
        report, failure, _ = measurer.run_isolated(artifact, ir, 0, verification)
        if failure is not None:
            raise SystemExit(f"{ir.name}: {failure.kind}: {failure.reason}")
        assert report is not None
        worker = {name: (wall, cpu) for name, wall, cpu in report.stages}
        for name in ("probe", "load", "verify"):
            if name in worker:
                clock.add("verify", *worker[name])
        clock.add("time", *worker["time"])
        if accuracy_data is not None:
            from hwnas.model.accuracy import SubnetAccuracy

            with clock.stage("accuracy"):
                accuracy = SubnetAccuracy(supernet, module, accuracy_data)(subnet)
        else:
            accuracy = None
        samples = report.attempts[-1]
        facts = {
            "ops": len(ir.ops),
            "macs": ir.macs,
            "input": "x".join(map(str, ir.input_specs[0].shape)),
            "latency_ms": statistics.median(samples) * 1e3,
            "verification": "probe" if verification.probe is not None else "own",
            "accuracy": accuracy,
        }
    return clock, facts


def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from hwnas.measurement.isolation import WorkerPool
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import load_supernet

    torch.set_num_threads(1)
    protocol = MeasurementProtocol(repeats=args.timed_repeats)
    pool = WorkerPool()
    rows = []
    try:
        for model in args.models:
            name, preset, digits = MODELS[model]
            loaded = load_supernet(name, preset=preset)
            data = loaded.data() if digits and args.accuracy else None
            space = loaded.supernet.space
            for size, subnet in (("smallest", space.smallest()), ("largest", space.largest())):
                for path in args.paths:
                    clocks, facts = [], {}
                    for run in range(args.repeats + 1):
                        clock, facts = evaluate(
                            loaded, subnet, path, args.target, protocol, pool, data, args.compile_in
                        )
                        if run:  # the first is the warm-up
                            clocks.append(clock)
                    row = {"model": model, "subnet": size, "path": path, **facts}
                    for stage in (*STAGES, "whole"):
                        walls = [
                            sum(c.wall.values()) if stage == "whole" else c.wall.get(stage, 0.0)
                            for c in clocks
                        ]
                        cpus = [
                            sum(c.cpu.values()) if stage == "whole" else c.cpu.get(stage, 0.0)
                            for c in clocks
                        ]
                        row[f"{stage}_s"] = statistics.median(walls)
                        row[f"{stage}_cpu_s"] = statistics.median(cpus)
                    untimed = [sum(v for k, v in c.cpu.items() if k != "time") for c in clocks]
                    row["untimed_cpu_s"] = statistics.median(untimed)
                    rows.append(row)
                    print(_line(row), flush=True)
    finally:
        pool.close()
    return rows


def ir_methods(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CPU ms to build a subnet's IR ops four ways, after extraction (median of ``--repeats``).

    ``export``: torch.export + walk (the old path). ``fx``: torch.fx symbolic
    tracing plus shape propagation (a real forward), before any mapping to
    aten ops: the least an fx route costs. ``record``: one recorded forward
    pass on meta tensors (the new path). ``ops only``: building the same
    OpNodes from known calls and shapes, without running the model: the least
    a supernet describing its own static graph would still pay.
    """
    import torch

    from hwnas.model.loader import load_supernet

    torch.set_num_threads(1)
    rows = []
    print("| model | subnet | ops | extract | export | fx (trace + shapes) | record | ops only |")
    print("|" + " --- |" * 8)
    for model in args.models:
        name, preset, _ = MODELS[model]
        loaded = load_supernet(name, preset=preset)
        space = loaded.supernet.space
        for size, subnet in (("smallest", space.smallest()), ("largest", space.largest())):
            row = {"model": model, "subnet": size}
            row.update(_ir_method_times(loaded.supernet, loaded.module, subnet, args.repeats))
            rows.append(row)
            cells = " | ".join(
                f"{row[m]:.1f}" for m in ("extract", "export", "fx", "record", "ops only")
            )
            print(f"| {model} | {size} | {row['ops']} | {cells} |", flush=True)
    return rows


def _ir_method_times(supernet: Any, module: Any, subnet: Any, repeats: int) -> dict[str, Any]:
    import torch
    import torch.fx as fx
    from torch.fx.passes.shape_prop import ShapeProp

    from hwnas.ir.from_forward import record
    from hwnas.ir.from_torch import op_node, trace

    static = supernet.extract(module, subnet)
    inputs = (supernet.example_input(subnet),)
    recorded = record(static, inputs)
    specs = {s.name: s for op in recorded.ops for s in (*op.outputs, *op.weights)}
    specs.update({s.name: s for s in recorded.inputs})
    parameters = {n for n, _ in static.named_parameters()}

    def rebuild() -> None:
        seen: set[str] = set()
        for call, op in zip(recorded.calls, recorded.ops, strict=True):
            op_node(
                call.name,
                call.target,
                call.args,
                call.kwargs,
                lambda v: (v.weight, specs[v.name]) if hasattr(v, "weight") else None,
                op.outputs,
                op.module,
                parameters,
                seen,
            )

    methods = {
        "extract": lambda: supernet.extract(module, subnet),
        "export": lambda: trace(static, inputs),
        "fx": lambda: ShapeProp(fx.symbolic_trace(static)).propagate(*inputs),
        "record": lambda: record(static, inputs),
        "ops only": rebuild,
    }
    times: dict[str, Any] = {"ops": len(recorded.ops)}
    for method, run in methods.items():
        samples = []
        for _ in range(max(1, repeats if method != "export" else 3)):
            cpu = time.process_time()
            with torch.no_grad():
                run()
            samples.append(time.process_time() - cpu)
        times[method] = statistics.median(samples) * 1e3
    return times


def tvm_paths(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Three ways into TVM Relax for the largest subnet of each model: import CPU s, passes +
    ``tvm.compile`` CPU s, latency (untuned, 1 thread) and largest error against torch.

    ``onnx``: TVM's ONNX frontend on the emitted ONNX (what targets use);
    ``builder``: a Relax BlockBuilder straight from the IR ops (a prototype,
    kept here to reproduce the comparison); ``torch``: TVM's torch frontend
    on torch.export's program (the old path; export time included).
    """
    import numpy as np
    import torch
    import tvm
    from tvm import relax

    from hwnas.ir import GraphIR
    from hwnas.model.loader import load_supernet
    from hwnas_targets.tvm_compile import host_cpu, inference_passes

    torch.set_num_threads(1)
    target = tvm.target.Target({"kind": "llvm", "mcpu": host_cpu(), "num-cores": 1})
    importers = {
        "onnx": lambda ir: ir.to_relax(),
        "builder": _relax_builder,
        "torch": lambda ir: GraphIR.from_module(
            ir.module, ir.example_inputs, tracer="export", lowering="torch"
        ).to_relax(),
    }
    rows = []
    print("| model | path | import s | passes + compile s | latency ms | max error |")
    print("|" + " --- |" * 6)
    for model in args.models:
        name, preset, _ = MODELS[model]
        loaded = load_supernet(name, preset=preset)
        ir = GraphIR.from_subnet(loaded.supernet, loaded.module, loaded.supernet.space.largest())
        inputs = [tvm.runtime.tensor(a) for a in ir.input_arrays().values()]
        reference = ir.reference_outputs()[0]
        times: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in importers}
        for repeat in range(max(1, args.repeats)):
            order = list(importers) if repeat % 2 == 0 else list(reversed(importers))
            for path in order:
                cpu = time.process_time()
                mod = importers[path](ir)
                imported = time.process_time() - cpu
                cpu = time.process_time()
                executable = tvm.compile(inference_passes()(mod), target)
                compiled = time.process_time() - cpu
                vm = relax.VirtualMachine(executable, tvm.cpu())
                timer = vm.time_evaluator("main", tvm.cpu(), number=5, repeat=5)
                error = float(np.abs(vm["main"](*inputs).numpy() - reference).max())
                times[path].append((imported, compiled, timer(*inputs).median * 1e3, error))
        for path, samples in times.items():
            cells = [statistics.median(s[i] for s in samples) for i in range(3)]
            row = {"model": model, "path": path, "import_s": cells[0], "compile_s": cells[1]}
            row |= {"latency_ms": cells[2], "max_error": max(s[3] for s in samples)}
            rows.append(row)
            print(
                f"| {model} | {path} | {cells[0]:.3f} | {cells[1]:.2f} | {cells[2]:.2f} | "
                f"{row['max_error']:.1e} |",
                flush=True,
            )
    return rows


def _relax_builder(ir: Any) -> Any:
    """The IR's ops as Relax calls through a BlockBuilder (covers the built-in supernets' ops)."""
    import numpy as np
    from tvm import relax

    from hwnas.ir.onnx_emitter import _fold_batch_norm, _present

    class Weights:  # what the emitter's batch-norm folding reads
        def __init__(self) -> None:
            self.np = np
            self.tensors = dict(ir.module.named_parameters()) | dict(ir.module.named_buffers())

        def weight(self, spec: Any) -> Any:
            return self.tensors[spec.name].detach().numpy()

    w = Weights()
    readers: dict[str, list[Any]] = {}
    for op in ir.ops:
        for tensor in op.inputs:
            readers.setdefault(tensor, []).append(op)
    bb = relax.BlockBuilder()
    params = [
        relax.Var(s.name, relax.TensorType(shape=s.shape, dtype=s.dtype)) for s in ir.input_specs
    ]
    const = lambda a, dtype="float32": relax.const(np.asarray(a, dtype=dtype))  # noqa: E731
    op_ = relax.op
    with bb.function("main", params):
        with bb.dataflow():
            env: dict[str, Any] = {s.name: p for s, p in zip(ir.input_specs, params, strict=True)}
            folded: set[str] = set()
            for op in ir.ops:
                if op.name in folded:
                    continue
                kind, x = op.op, env[op.inputs[0]] if op.inputs else None
                out = op.outputs[0].name
                if kind == "aten.conv2d.default":
                    parts = _present(op, ("weight", "bias"))
                    weight = w.weight(parts["weight"])
                    bias = w.weight(parts["bias"]) if "bias" in parts else None
                    nxt = readers.get(out, [])
                    if len(nxt) == 1 and nxt[0].op == "aten.batch_norm.default":
                        weight, bias = _fold_batch_norm(w, nxt[0], weight, bias)  # type: ignore[arg-type]
                        folded.add(nxt[0].name)
                        out = nxt[0].outputs[0].name
                    pad = list(op.attr("padding"))
                    y = bb.emit(
                        op_.nn.conv2d(
                            x,
                            const(weight),
                            op.attr("stride"),
                            pad + pad,
                            op.attr("dilation"),
                            op.attr("groups"),
                        )
                    )
                    if bias is not None:
                        y = bb.emit(op_.add(y, const(bias.reshape(1, -1, 1, 1))))
                elif kind == "aten.relu.default":
                    y = bb.emit(op_.nn.relu(x))
                elif kind == "aten.hardswish.default":
                    y = bb.emit(
                        op_.multiply(
                            x, op_.divide(op_.clip(op_.add(x, const(3.0)), 0, 6), const(6.0))
                        )
                    )
                elif kind == "aten.hardsigmoid.default":
                    y = bb.emit(op_.clip(op_.add(op_.divide(x, const(6.0)), const(0.5)), 0, 1))
                elif kind in ("aten.add.Tensor", "aten.mul.Tensor"):
                    other = (
                        env[op.inputs[1]]
                        if len(op.inputs) == 2
                        else const(w.weight(op.weights[0]))
                        if op.weights
                        else const(op.attr("other"), op.outputs[0].dtype)
                    )
                    y = bb.emit((op_.add if "add" in kind else op_.multiply)(x, other))
                elif kind == "aten.mean.dim":
                    y = bb.emit(
                        op_.mean(x, axis=list(op.attr("dim")), keepdims=bool(op.attr("keepdim")))
                    )
                elif kind in (
                    "aten.flatten.using_ints",
                    "aten.reshape.default",
                    "aten.view.default",
                ):
                    y = bb.emit(op_.reshape(x, op.outputs[0].shape))
                elif kind == "aten.dropout.default":
                    y = x
                elif kind == "aten.linear.default":
                    parts = _present(op, ("weight", "bias"))
                    bias = const(w.weight(parts["bias"])) if "bias" in parts else None
                    y = bb.emit(op_.linear(x, const(w.weight(parts["weight"])), bias))
                elif kind == "aten.transpose.int":
                    rank = len(ir.tensors[op.inputs[0]].shape)
                    perm = list(range(rank))
                    a, b = op.attr("dim0") % rank, op.attr("dim1") % rank
                    perm[a], perm[b] = perm[b], perm[a]
                    y = bb.emit(op_.permute_dims(x, perm))
                elif kind == "aten.expand.default":
                    source = x if x is not None else const(w.weight(op.weights[0]))
                    y = bb.emit(op_.broadcast_to(source, op.outputs[0].shape))
                elif kind == "aten.cat.default":
                    y = bb.emit(op_.concat([env[t] for t in op.inputs], axis=op.attr("dim")))
                elif kind == "aten.layer_norm.default":
                    parts = _present(op, ("weight", "bias"))
                    gamma, beta = const(w.weight(parts["weight"])), const(w.weight(parts["bias"]))
                    y = bb.emit(
                        op_.nn.layer_norm(x, gamma, beta, axes=[-1], epsilon=op.attr("eps"))
                    )
                elif kind == "aten.matmul.default":
                    y = bb.emit(op_.matmul(x, env[op.inputs[1]]))
                elif kind == "aten.softmax.int":
                    y = bb.emit(op_.nn.softmax(x, axis=op.attr("dim")))
                elif kind == "aten.gelu.default":
                    y = bb.emit(op_.nn.gelu(x))
                elif kind == "aten.select.int":
                    index = relax.const(op.attr("index"), "int64")
                    y = bb.emit(op_.take(x, index, axis=op.attr("dim")))
                elif kind == "aten.embedding.default":
                    y = bb.emit(op_.take(const(w.weight(op.weights[0])), x, axis=0))
                elif kind == "aten.max_pool2d.default":
                    pad = list(op.attr("padding"))
                    y = bb.emit(
                        op_.nn.max_pool2d(
                            x,
                            op.attr("kernel_size"),
                            op.attr("stride"),
                            pad + pad,
                            op.attr("dilation"),
                        )
                    )
                else:
                    raise NotImplementedError(kind)
                env[out] = y
            results = [env[t] for t in ir.output_tensors]
            output = bb.emit_output(results[0] if len(results) == 1 else relax.Tuple(results))
        bb.emit_func_output(output)
    return bb.get()


def _line(row: dict[str, Any]) -> str:
    cells = " | ".join(f"{row[f'{s}_s']:.3f} ({row[f'{s}_cpu_s']:.3f})" for s in (*STAGES, "whole"))
    return (
        f"| {row['model']} | {row['subnet']} ({row['input']}, {row['macs'] / 1e6:.1f} MMACs) | "
        f"{row['path']} | {cells} | {row['untimed_cpu_s']:.3f} | {row['latency_ms']:.3f} | {row['verification']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["default", "mbv3-tiny", "mbv3-full", "resnet-full", "transformer-full"],
        choices=sorted(MODELS),
    )
    parser.add_argument(
        "--paths", nargs="+", default=["before", "after"], choices=["before", "after"]
    )
    parser.add_argument("--target", default="onnxruntime:cpu?threads=1")
    parser.add_argument("--repeats", type=int, default=5, help="evaluations per row (median)")
    parser.add_argument(
        "--timed-repeats",
        type=int,
        default=10,
        help="timed samples per measurement (as `hwnas search`)",
    )
    parser.add_argument(
        "--compile-in",
        choices=["worker", "process"],
        default="worker",
        help="worker: the isolated compile worker, as a search compiles (lowering counts in "
        "compile); process: this process, lowering timed apart (the pre-isolation breakdown)",
    )
    parser.add_argument("--no-accuracy", dest="accuracy", action="store_false")
    parser.add_argument("--core", type=int, help="pin this process and its worker to one core")
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument(
        "--ir-methods",
        action="store_true",
        help="compare ways of building the IR instead (export, fx, record, ops only), CPU ms",
    )
    parser.add_argument(
        "--tvm-paths",
        action="store_true",
        help="compare ways into TVM Relax instead (ONNX frontend, IR builder, torch frontend)",
    )
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    if args.ir_methods or args.tvm_paths:
        rows = ir_methods(args) if args.ir_methods else tvm_paths(args)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return

    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(
        f"# {cpu}; torch {torch.__version__}; target {args.target}; load {os.getloadavg()[0]:.2f}"
    )
    print(f"# seconds, median of {args.repeats}: wall (CPU)")
    print(
        "| model | subnet | path | " + " | ".join(f"{s} s" for s in (*STAGES, "whole")) + " | "
        "untimed CPU s | latency ms | checked with |"
    )
    print("|" + " --- |" * (len(STAGES) + 7))
    rows = bench(args)
    print(f"# load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
