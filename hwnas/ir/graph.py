"""The :class:`GraphIR`: a static network as a networkx graph of ops with costs, kernels, a key and lowerings.

Building ops from torch or ONNX, kernel grouping and lowering each live in
their own module of :mod:`hwnas.ir`; this one ties them together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from hwnas.errors import ConfigError
from hwnas.ir.nodes import OpNode, TensorSpec
from hwnas.notices import log_once

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch.export import ExportedProgram
    from torch.fx import GraphModule

    from hwnas.ir.from_torch import TorchTrace
    from hwnas.ir.kernels import KernelGroup
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet

JSON_FORMAT = "hwnas-ir/1"
#: How an IR is turned into ONNX / Relax: hwnas's own emitters (falling back to torch's
#: exporters for ops they do not know), or torch's exporters only (the slow path kept for comparison).
LOWERINGS = ("hwnas", "torch")
#: How a torch module becomes IR ops: one recorded forward pass (fast, falls back to
#: export for calls it has no rule for), or torch.export.
TRACERS = ("forward", "export")

# ops whose output shares its input's memory (no new activation bytes)
VIEW_KINDS = frozenset(
    {
        "view",
        "reshape",
        "_unsafe_view",
        "flatten",
        "unflatten",
        "unsqueeze",
        "squeeze",
        "permute",
        "transpose",
        "t",
        "expand",
        "alias",
        "detach",
        "dropout",
        "select",
        "slice",
        "identity",
    }
)


class GraphIR:
    """A static network: ops (networkx DiGraph, edges are tensors), totals, kernel groups, lowerings.

    Build one with :meth:`from_module`, :meth:`from_subnet`, :meth:`from_onnx`
    or :meth:`from_json`. Targets compile from ``module`` / ``example_inputs``
    (torch), :meth:`to_onnx` or :meth:`to_relax`, and check their outputs
    against :meth:`reference_outputs`. Graph inputs are nodes of kind
    ``"input"``; every other node is an op whose ``"op"`` attribute is its
    :class:`~hwnas.ir.nodes.OpNode`, and each edge's ``"tensor"`` attribute is
    the :class:`~hwnas.ir.nodes.TensorSpec` flowing along it.
    """

    def __init__(
        self,
        *,
        name: str,
        ops: Sequence[OpNode],
        input_specs: Sequence[TensorSpec],
        output_specs: Sequence[TensorSpec],
        output_tensors: Sequence[str],
        source: str,
        weights_digest: str,
        module: torch.nn.Module | None = None,
        example_inputs: Sequence[torch.Tensor] | None = None,
        exported: ExportedProgram | None = None,
        calls: Sequence[Any] = (),
        onnx_path: Path | None = None,
        metadata: Mapping[str, Any] | None = None,
        lowering: str = "hwnas",
    ) -> None:
        if lowering not in LOWERINGS:
            raise ConfigError(
                f"IR lowering {lowering!r} is not known", hint=f"use one of {', '.join(LOWERINGS)}"
            )
        self.name = name
        self.ops: tuple[OpNode, ...] = tuple(ops)
        self.input_specs: tuple[TensorSpec, ...] = tuple(input_specs)
        self.output_specs: tuple[TensorSpec, ...] = tuple(output_specs)
        self.output_tensors: tuple[str, ...] = tuple(output_tensors)
        self.source = source
        self.weights_digest = weights_digest
        self.module = module
        self.example_inputs: tuple[torch.Tensor, ...] | None = (
            tuple(example_inputs) if example_inputs is not None else None
        )
        #: A second, different set of inputs for the two-input output check (real data where
        #: the IR's maker has it, e.g. int8 models); ``None``: the check draws random ones.
        self.second_inputs: tuple[torch.Tensor, ...] | None = None
        self._exported = exported
        self._calls = tuple(calls)
        self.lowering = lowering
        self.onnx_path = onnx_path
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.tensors: dict[str, TensorSpec] = {}
        self.graph = self._build_graph()
        self.macs: int = sum(op.macs for op in self.ops)
        self.params: int = sum(op.params for op in self.ops)
        self.bytes_moved: int = sum(op.bytes_moved for op in self.ops)
        self.peak_activation_bytes: int = self._peak_activation_bytes()
        self.structure_key: str = _digest(json.dumps(self._structure(), sort_keys=True))
        self.key: str = _digest(f"{self.structure_key}:{self.weights_digest}")

    # -- construction ----------------------------------------------------------

    @classmethod
    def from_module(
        cls,
        module: torch.nn.Module,
        example_inputs: torch.Tensor | Sequence[torch.Tensor],
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tracer: str = "export",
        lowering: str = "hwnas",
    ) -> GraphIR:
        """Build the IR of a static module (put in eval mode).

        ``tracer="export"`` (the default, for any model) uses ``torch.export``;
        ``"forward"`` records one forward pass instead, 20-100x faster, giving
        the same ops for the calls it knows and falling back to torch.export
        (logged once) for a module with others.
        """
        import torch

        from hwnas.ir.from_torch import trace

        if tracer not in TRACERS:
            raise ConfigError(
                f"IR tracer {tracer!r} is not known", hint=f"use one of {', '.join(TRACERS)}"
            )
        inputs = (
            (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        )
        traced = _recorded(module, inputs) if tracer == "forward" else None
        if traced is None:
            traced = trace(module, inputs)
        return cls(
            name=name or type(module).__name__,
            ops=traced.ops,
            input_specs=traced.inputs,
            output_specs=traced.outputs,
            output_tensors=traced.output_tensors,
            source="torch",
            weights_digest=_state_dict_digest(module),
            module=module,
            example_inputs=inputs,
            exported=traced.exported,
            calls=traced.calls,
            metadata=metadata,
            lowering=lowering,
        )

    @classmethod
    def from_subnet(
        cls,
        supernet: Supernet,
        module: torch.nn.Module,
        subnet: Subnet,
        *,
        batch: int = 1,
        tracer: str = "forward",
        lowering: str = "hwnas",
    ) -> GraphIR:
        """Extract ``subnet`` from the supernet's elastic ``module`` and build the IR of the static result.

        Subnets are recorded from one forward pass by default (``tracer``, see :meth:`from_module`).
        """
        subnet = supernet.subnet(subnet)
        static = supernet.extract(module, subnet)
        return cls.from_module(
            static,
            (supernet.example_input(subnet, batch=batch),),
            name=f"{supernet.name}/{subnet.key}",
            metadata={
                "supernet": supernet.name,
                "arguments": supernet.arguments,
                "space": subnet.space,
                "subnet": subnet.to_dict(),
                "subnet_key": subnet.key,
            },
            tracer=tracer,
            lowering=lowering,
        )

    @classmethod
    def from_onnx(cls, path: str | Path, *, name: str | None = None) -> GraphIR:
        """Read an ONNX file; shapes come from ONNX shape inference, MACs for Conv/Gemm/MatMul."""
        from hwnas.ir.from_onnx import read_onnx

        path = Path(path)
        parsed = read_onnx(path)
        return cls(
            name=name or path.stem,
            ops=parsed.ops,
            input_specs=parsed.inputs,
            output_specs=parsed.outputs,
            output_tensors=parsed.output_tensors,
            source="onnx",
            weights_digest=parsed.weights_digest,
            onnx_path=path,
        )

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> GraphIR:
        """Rebuild the graph metadata written by :meth:`to_json` (no torch module: it cannot be lowered)."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"IR JSON is not valid JSON (line {exc.lineno}: {exc.msg})"
                ) from None
        if not isinstance(data, Mapping) or data.get("format") != JSON_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ConfigError(
                f"not an hwnas IR document: format is {found!r}, expected {JSON_FORMAT!r}",
                hint="write it with GraphIR.to_json() or `hwnas ir ... --json`",
            )
        ir = cls(
            name=str(data["name"]),
            ops=[OpNode.from_dict(o) for o in data["ops"]],
            input_specs=[TensorSpec.from_dict(t) for t in data["inputs"]],
            output_specs=[TensorSpec.from_dict(t) for t in data["outputs"]],
            output_tensors=list(data["output_tensors"]),
            source=str(data.get("source", "json")),
            weights_digest=str(data["weights_digest"]),
            metadata=data.get("metadata") or {},
        )
        if data.get("key") not in (None, ir.key):
            raise ConfigError(
                f"IR JSON {ir.name!r}: stored key {data['key']} does not match its content ({ir.key})",
                hint="the document was edited or written by an incompatible hwnas version",
            )
        return ir

    # -- facts -------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"GraphIR({self.name!r}, ops={len(self.ops)}, macs={self.macs:,}, params={self.params:,}, "
            f"peak_activation_bytes={self.peak_activation_bytes:,}, key={self.key})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle of the IR holds (it travels to the isolated compile worker).

        torch's op overloads and ``torch.export`` programs do not pickle: the
        recorded calls go by op name, and the program and the fx module are
        left out and rebuilt on demand. The module travels packed
        (:mod:`hwnas.ir.portable_module`).
        """
        from hwnas.ir.from_forward import portable_calls
        from hwnas.ir.portable_module import pack_module

        state = dict(self.__dict__)
        state["_exported"] = None
        state.pop("graph_module", None)
        state["_calls"] = portable_calls(self._calls)
        if self.module is not None:  # its tensors as numpy arrays: several times faster
            state["module"] = pack_module(self.module)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from hwnas.ir.from_forward import resolved_calls
        from hwnas.ir.portable_module import PackedModule, unpack_module

        state["_calls"] = resolved_calls(state["_calls"])
        if isinstance(state.get("module"), PackedModule):
            state["module"] = unpack_module(state["module"])
        self.__dict__.update(state)

    def op(self, name: str) -> OpNode:
        try:
            return self.graph.nodes[name]["op"]
        except KeyError:
            raise ConfigError(f"IR {self.name!r} has no op {name!r}") from None

    @property
    def exported(self) -> ExportedProgram | None:
        """The module's ``torch.export`` program (exported now if the IR was recorded; ``None`` without torch)."""
        if self._exported is None and self.module is not None and self.example_inputs is not None:
            from hwnas.ir.from_torch import export_module

            self._exported = export_module(self.module, self.example_inputs)
        return self._exported

    @cached_property
    def graph_module(self) -> GraphModule | None:
        """The IR's aten calls as an fx module with parameters as attributes; node names are op names.

        ``None`` for an IR without torch.
        """
        if self._calls and self.module is not None:
            from hwnas.ir.from_forward import graph_module

            return graph_module(self.module, self.input_specs, self._calls, self.output_tensors)
        return self.exported.module() if self.exported is not None else None

    @cached_property
    def kernel_groups(self) -> tuple[KernelGroup, ...]:
        """Fused kernels (conv/linear + batch-norm + activation, as nn-Meter detects them), in graph order."""
        from hwnas.ir.kernels import group_kernels

        return group_kernels(self)

    def kernel_module(
        self, group: KernelGroup | str
    ) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        """A kernel group (or its name) as a standalone torch module with the real weights, and example inputs."""
        from hwnas.ir.kernels import kernel_module

        return kernel_module(self, self.kernel_group(group) if isinstance(group, str) else group)

    def kernel_ir(self, group: KernelGroup | str) -> GraphIR:
        """A kernel group as a GraphIR of its own, so any target can compile and time it alone."""
        group = self.kernel_group(group) if isinstance(group, str) else group
        module, inputs = self.kernel_module(group)
        return GraphIR.from_module(
            module,
            inputs,
            name=f"{self.name}:{group.name}",
            metadata={"kernel_key": group.key},
            tracer="forward",
            lowering=self.lowering,
        )

    def kernel_group(self, name: str) -> KernelGroup:
        for group in self.kernel_groups:
            if group.name == name:
                return group
        raise ConfigError(
            f"IR {self.name!r} has no kernel group {name!r}",
            hint=f"groups: {', '.join(g.name for g in self.kernel_groups)}",
        )

    def consumers(self, tensor: str) -> list[str]:
        """Names of the ops that read ``tensor``."""
        return [op.name for op in self.ops if tensor in op.inputs]

    def totals(self) -> dict[str, int]:
        return {
            "ops": len(self.ops),
            "macs": self.macs,
            "params": self.params,
            "bytes_moved": self.bytes_moved,
            "peak_activation_bytes": self.peak_activation_bytes,
            "kernels": len(self.kernel_groups),
        }

    # -- running the reference -----------------------------------------------------

    def input_arrays(self) -> dict[str, np.ndarray]:
        """The example inputs as numpy arrays keyed by input name (what ONNX / TVM runners feed)."""
        inputs = self._require_torch("input_arrays")[1]
        return {
            spec.name: t.detach().cpu().numpy()
            for spec, t in zip(self.input_specs, inputs, strict=True)
        }

    def reference_outputs(self, inputs: Sequence[Any] | None = None) -> list[np.ndarray]:
        """The torch module's outputs, as numpy arrays in ``output_specs`` order.

        On the example inputs, or on ``inputs`` (numpy arrays or tensors of the input specs).
        """
        import torch

        module, example = self._require_torch("reference_outputs")
        if inputs is not None:
            example = tuple(x if torch.is_tensor(x) else torch.from_numpy(x) for x in inputs)
        module.eval()
        with torch.no_grad():
            result = module(*example)
        return [t.detach().cpu().numpy() for t in _tensor_leaves(result)]

    def with_weights(self, module: torch.nn.Module, *, name: str | None = None) -> GraphIR:
        """The same graph over ``module``'s weights (same state-dict names and shapes), e.g. re-seeded ones."""
        own = self._require_torch("with_weights")[0].state_dict()
        other = module.state_dict()
        if {k: tuple(v.shape) for k, v in own.items()} != {
            k: tuple(v.shape) for k, v in other.items()
        }:
            raise ConfigError(
                f"IR {self.name!r}: the new module's weights differ in names or shapes from the IR's"
            )
        return GraphIR(
            name=name or self.name,
            ops=self.ops,
            input_specs=self.input_specs,
            output_specs=self.output_specs,
            output_tensors=self.output_tensors,
            source=self.source,
            weights_digest=_state_dict_digest(module),
            module=module,
            example_inputs=self.example_inputs,
            calls=self._calls,
            metadata=self.metadata,
            lowering=self.lowering,
        )

    def _require_torch(self, what: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        if self.module is None or self.example_inputs is None:
            raise ConfigError(
                f"IR {self.name!r} ({self.source}) has no torch module, so {what} is not possible",
                hint="build the IR with GraphIR.from_module or GraphIR.from_subnet",
            )
        return self.module, self.example_inputs

    # -- lowering ---------------------------------------------------------------------

    def to_onnx(self, path: str | Path, *, opset: int = 18) -> Path:
        """Write the network as ONNX; returns the path.

        hwnas's emitter writes it from the IR's ops (batch norm folded); an op
        it does not know, or ``lowering="torch"``, uses torch's dynamo exporter.
        """
        from hwnas.ir.lowering import to_onnx

        return to_onnx(self, Path(path), opset=opset)

    def to_relax(self, *, keep_params_as_input: bool = False) -> Any:
        """The network as a TVM Relax ``IRModule`` with function ``main``; parameters bound as constants.

        With ``keep_params_as_input`` they stay inputs instead; split them off
        with ``tvm.relax.frontend.detach_params``.
        """
        from hwnas.ir.lowering import to_relax

        return to_relax(self, keep_params_as_input=keep_params_as_input)

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "name": self.name,
            "source": self.source,
            "key": self.key,
            "structure_key": self.structure_key,
            "weights_digest": self.weights_digest,
            "inputs": [t.to_dict() for t in self.input_specs],
            "outputs": [t.to_dict() for t in self.output_specs],
            "output_tensors": list(self.output_tensors),
            "totals": self.totals(),
            "metadata": self.metadata,
            "ops": [op.to_dict() for op in self.ops],
            "kernels": [k.to_dict() for k in self.kernel_groups],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    # -- internals -------------------------------------------------------------------

    def _build_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph(name=self.name)
        producer: dict[str, tuple[str, TensorSpec]] = {}
        for spec in self.input_specs:
            node = OpNode(name=spec.name, op="input", kind="input", inputs=(), outputs=(spec,))
            graph.add_node(spec.name, op=node)
            producer[spec.name] = (spec.name, spec)
        for op in self.ops:
            if op.name in graph:
                raise ConfigError(f"IR {self.name!r}: op name {op.name!r} is used twice")
            graph.add_node(op.name, op=op)
            for tensor in op.inputs:
                if tensor not in producer:
                    raise ConfigError(
                        f"IR {self.name!r}: op {op.name!r} reads {tensor!r}, which nothing produces"
                    )
                source, spec = producer[tensor]
                graph.add_edge(source, op.name, tensor=spec)
            for spec in op.outputs:
                producer[spec.name] = (op.name, spec)
        self.tensors = {name: spec for name, (_, spec) in producer.items()}
        missing = [t for t in self.output_tensors if t not in producer]
        if missing:
            raise ConfigError(f"IR {self.name!r}: graph outputs {missing} are produced by no op")
        return graph

    def _peak_activation_bytes(self) -> int:
        """Largest sum of live activation bytes over a walk in op order (views share their input's memory)."""
        last_use: dict[str, int] = {}
        end = len(self.ops)
        for index, op in enumerate(self.ops):
            for tensor in op.inputs:
                last_use[tensor] = index
        for tensor in self.output_tensors:
            last_use[tensor] = end
        storage: dict[str, str] = {}  # tensor -> the tensor whose memory it lives in
        holders: dict[str, int] = {}  # storage -> number of live tensors in it
        size: dict[str, int] = {}
        live = 0

        def allocate(spec: TensorSpec) -> None:
            nonlocal live
            storage[spec.name] = spec.name
            holders[spec.name] = 1
            size[spec.name] = spec.nbytes
            live += spec.nbytes

        def release(tensor: str) -> None:
            nonlocal live
            root = storage[tensor]
            holders[root] -= 1
            if holders[root] == 0:
                live -= size[root]

        for spec in self.input_specs:
            allocate(spec)
        peak = live
        for spec in self.input_specs:
            if spec.name not in last_use:
                release(spec.name)
        for index, op in enumerate(self.ops):
            for spec in op.outputs:
                if op.kind in VIEW_KINDS and op.inputs:
                    root = storage[op.inputs[0]]
                    storage[spec.name] = root
                    holders[root] += 1
                else:
                    allocate(spec)
            peak = max(peak, live)
            for tensor in dict.fromkeys((*op.inputs, *(s.name for s in op.outputs))):
                if last_use.get(tensor, index) == index:
                    release(tensor)
        return peak

    def _structure(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.input_specs],
            "outputs": [t.to_dict() for t in self.output_specs],
            "output_tensors": list(self.output_tensors),
            "ops": [
                {
                    k: v
                    for k, v in op.to_dict().items()
                    if k not in ("module", "macs", "params", "bytes_moved")
                }
                for op in self.ops
            ],
        }


def _recorded(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> TorchTrace | None:
    """The module's ops from one recorded forward pass, or ``None`` (logged once per reason) to export instead."""
    from hwnas.ir.from_forward import record
    from hwnas.ir.torch_calls import NotRecordable

    try:
        return record(module, inputs)
    except NotRecordable as exc:
        log_once(
            f"recording {type(module).__name__}: {exc}; building its IR with torch.export "
            "instead (slower)",
            logger="hwnas.ir",
        )
        return None


def _tensor_leaves(value: Any) -> list[Any]:
    """Tensors of a (nested tuple / list / dict) module output, in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _tensor_leaves(item)]
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _tensor_leaves(item)]
    return [value] if hasattr(value, "detach") else []


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state_dict_digest(module: torch.nn.Module) -> str:
    """Hash of every parameter and buffer (names, shapes, dtypes, bytes): part of ``key``."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
