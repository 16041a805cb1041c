"""Building IR ops fast, from one recorded forward pass of a static torch module (no ``torch.export``).

A ``TorchFunctionMode`` sees every torch call the model makes while it runs
once; :mod:`hwnas.ir.torch_calls` says which aten op each call is, and
:func:`hwnas.ir.from_torch.op_node` makes it the same :class:`OpNode`
torch.export's graph gives. A call without a rule raises
:class:`~hwnas.ir.torch_calls.NotRecordable`, and the caller builds the IR with torch.export instead.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.ir.from_torch import TorchTrace, dtype_name, graph_outputs, op_node, output_specs
from hwnas.ir.nodes import OpNode, TensorSpec
from hwnas.ir.torch_calls import NotRecordable, Rule, aten_call, output_shape, rules

if TYPE_CHECKING:
    import torch
    from torch.fx import GraphModule


@dataclass(frozen=True)
class Ref:
    """A tensor argument of a recorded call: an IR tensor (``weight=False``) or a state-dict entry."""

    name: str
    weight: bool


@dataclass(frozen=True)
class RecordedCall:
    """One aten call of the recorded pass, tensors as :class:`Ref`: enough to rebuild an fx graph."""

    name: str
    target: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def portable_calls(calls: Sequence[RecordedCall]) -> tuple[RecordedCall, ...]:
    """``calls`` with each aten op named (``"aten.conv2d.default"``), so they pickle; see :func:`resolved_calls`."""
    return tuple(
        dataclasses.replace(c, target=str(c.target)) if not isinstance(c.target, str) else c
        for c in calls
    )


def resolved_calls(calls: Sequence[RecordedCall]) -> tuple[RecordedCall, ...]:
    """:func:`portable_calls`' named ops turned back into torch's op overloads."""
    import torch

    def overload(name: str) -> Any:
        found: Any = torch.ops
        for part in name.split("."):
            found = getattr(found, part)
        return found

    return tuple(
        dataclasses.replace(c, target=overload(c.target)) if isinstance(c.target, str) else c
        for c in calls
    )


@functools.cache
def _rules() -> dict[Any, Rule]:
    return rules()


def record(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> TorchTrace:
    """Run ``module`` once on meta tensors shaped like ``example_inputs`` and return its IR ops and calls.

    No arithmetic runs: each recorded call returns an empty meta tensor of
    the shape :func:`~hwnas.ir.torch_calls.output_shape` gives (the aten op's
    meta kernel where it gives none), so recording costs the same at any
    resolution. Raises :class:`NotRecordable` for a call, input or output
    this path does not cover, and for code that needs values (data-dependent branches).
    """
    import torch
    from torch.overrides import TorchFunctionMode

    module.eval()
    state = _State(module)
    shadows = [torch.empty_like(x, device="meta") for x in example_inputs]
    inputs = state.name_inputs(shadows)
    table = _rules()

    class Recorder(TorchFunctionMode):
        def __torch_function__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            kwargs = kwargs or {}
            rule = table.get(func)
            call = rule(args, kwargs) if rule is not None else aten_call(func, args, kwargs)
            if call is None:  # shapes, sizes, dims: plain Python values, computed as they are
                result = func(*args, **kwargs)
                if _holds_tensor(result):
                    raise NotRecordable(f"no rule for {_qualname(func)}")
                return result
            target, aten_args, aten_kwargs = call
            meta_args = state.meta(aten_args)
            known = output_shape(target, meta_args, state.meta(aten_kwargs))
            try:
                if known is not None:
                    result = torch.empty(known[0], dtype=known[1], device="meta")
                else:
                    result = target(*meta_args, **state.meta(aten_kwargs))
            except NotRecordable:
                raise
            except Exception as exc:
                raise NotRecordable(f"{target} on meta tensors: {exc}") from exc
            if not isinstance(result, torch.Tensor):
                raise NotRecordable(f"{target} returns several tensors")
            if any(result is a for a in args):
                result = result.detach()  # an alias (eval dropout): a tensor of its own in the IR
            state.add(target, aten_args, aten_kwargs, result)
            return result

    hooks = state.module_hooks()
    try:
        with torch.no_grad(), Recorder():
            result = module(*shadows)
    except NotRecordable:
        raise
    except Exception as exc:  # code that needs values (data-dependent branches, .item())
        raise NotRecordable(f"forward on meta tensors failed: {type(exc).__name__}: {exc}") from exc
    finally:
        for hook in hooks:
            hook.remove()
    leaves = list(_tensors(result))
    if not leaves or not isinstance(result, (torch.Tensor, tuple, list)):
        raise NotRecordable("the module returns no tensor, or a dict")
    outputs = []
    for leaf in leaves:
        found = state.spec_of(leaf)
        if found is None or found[0] or found[1].name in {s.name for s in inputs}:
            raise NotRecordable("an output that is a graph input or a weight")
        outputs.append(found[1])
    return TorchTrace(
        exported=None,
        ops=tuple(state.ops),
        inputs=tuple(inputs),
        outputs=graph_outputs(outputs),
        output_tensors=tuple(s.name for s in outputs),
        calls=tuple(state.calls),
    )


class _State:
    """What the recording pass knows: weights by identity, named activations, module paths, ops."""

    def __init__(self, module: torch.nn.Module) -> None:
        import torch
        from torch.fx.graph import _Namespace

        self.tensor = torch.Tensor
        self.module = module
        self.paths: dict[int, str] = {}
        self.weights: dict[int, tuple[str, Any]] = {}
        self.parameter_names: set[str] = set()
        buffers: list[tuple[str, Any]] = []
        # one walk instead of named_parameters() + named_buffers(): the same names (first wins)
        for path, sub in module.named_modules():
            self.paths[id(sub)] = path
            prefix = f"{path}." if path else ""
            for name, value in sub._parameters.items():
                if value is not None and id(value) not in self.weights:
                    self.weights[id(value)] = (prefix + name, value)
                    self.parameter_names.add(prefix + name)
            buffers += [(prefix + n, v) for n, v in sub._buffers.items() if v is not None]
        for name, value in buffers:
            self.weights.setdefault(id(value), (name, value))
        self.weight_specs: dict[str, TensorSpec] = {}
        self.shadows: dict[int, Any] = {}  # weight id -> its meta tensor
        self.activations: dict[int, tuple[weakref.ref[Any], TensorSpec]] = {}
        self.names = _Namespace()  # torch.fx's naming (conv2d, conv2d_1, ...), as export's
        self.stack: list[str] = []
        self.seen_params: set[str] = set()
        self.ops: list[OpNode] = []
        self.calls: list[RecordedCall] = []

    def name_inputs(self, example_inputs: Sequence[torch.Tensor]) -> list[TensorSpec]:
        """Graph inputs take the names of ``forward``'s parameters, as torch.export names them."""
        parameters = list(inspect.signature(self.module.forward).parameters.values())
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positional = [p for p in parameters if p.kind in kinds]
        if len(positional) < len(example_inputs):
            raise NotRecordable("forward takes *args")
        specs = []
        for parameter, value in zip(positional, example_inputs, strict=False):
            name = self.names.create_name(parameter.name, None)
            spec = TensorSpec(name, tuple(int(d) for d in value.shape), dtype_name(value.dtype))
            self.activations[id(value)] = (weakref.ref(value), spec)
            specs.append(spec)
        return specs

    def module_hooks(self) -> list[Any]:
        """Keep ``stack`` at the path of the module running now (export's ``nn_module_stack``).

        Global hooks (two, not two per module), answering only for this
        module's submodules on this thread.
        """
        import threading

        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        stack, paths, me = self.stack, self.paths, threading.get_ident()

        def enter(module: Any, args: Any) -> None:
            path = paths.get(id(module))
            if path is not None and threading.get_ident() == me:
                stack.append(path)

        def leave(
            module: Any, args: Any, output: Any
        ) -> None:  # must return None: it replaces output
            if id(module) in paths and threading.get_ident() == me:
                stack.pop()

        return [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]

    def weight_of(self, value: Any) -> str | None:
        found = self.weights.get(id(value))
        return found[0] if found is not None and found[1] is value else None

    def meta(self, value: Any) -> Any:
        """``value`` with every weight replaced by a meta tensor of its shape (activations already are)."""
        if isinstance(value, self.tensor):
            if value.device.type == "meta":
                return value
            if self.weight_of(value) is None:
                raise NotRecordable(
                    "a tensor that is neither an input, a weight nor an op's output"
                )
            shadow = self.shadows.get(id(value))
            if shadow is None:
                import torch

                shadow = self.shadows[id(value)] = torch.empty_like(value, device="meta")
            return shadow
        if isinstance(value, (list, tuple)) and any(isinstance(v, self.tensor) for v in value):
            return type(value)(self.meta(v) for v in value)
        if isinstance(value, dict):
            return {k: self.meta(v) for k, v in value.items()}
        return value

    def spec_of(self, value: Any) -> tuple[bool, TensorSpec] | None:
        """``(True, spec)`` for a weight, ``(False, spec)`` for an activation, ``None`` otherwise."""
        if not isinstance(value, self.tensor):
            return None
        name = self.weight_of(value)
        if name is not None:
            if name not in self.weight_specs:
                self.weight_specs[name] = TensorSpec(
                    name, tuple(int(d) for d in value.shape), dtype_name(value.dtype)
                )
            return True, self.weight_specs[name]
        found = self.activations.get(id(value))
        if found is not None and found[0]() is value:
            return False, found[1]
        return None

    def ref(self, value: Any) -> Any:
        """``value`` with every tensor replaced by its :class:`Ref`."""
        if isinstance(value, self.tensor):
            found = self.spec_of(value)
            if found is None:
                raise NotRecordable(
                    "a tensor that is neither an input, a weight nor an op's output"
                )
            return Ref(found[1].name, found[0])
        if isinstance(value, (list, tuple)) and any(isinstance(v, self.tensor) for v in value):
            return type(value)(self.ref(v) for v in value)
        return value

    def add(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        name = self.names.create_name(target._overloadpacket.__name__, None)
        call = RecordedCall(
            name, target, self.ref(args), {k: self.ref(v) for k, v in kwargs.items()}
        )
        outputs = output_specs(name, result)
        op = op_node(
            name,
            target,
            args,
            kwargs,
            self.spec_of,
            outputs,
            self.stack[-1] if self.stack else "",
            self.parameter_names,
            self.seen_params,
        )
        self.activations[id(result)] = (weakref.ref(result), outputs[0])
        self.ops.append(op)
        self.calls.append(call)


def graph_module(
    module: torch.nn.Module,
    inputs: Sequence[TensorSpec],
    calls: Sequence[RecordedCall],
    output_tensors: Sequence[str],
) -> GraphModule:
    """The recorded calls as an fx module over ``module``'s weights; node names are the IR's op names.

    It has the form of an exported program's unlifted module (aten calls,
    weights as ``get_attr``), so kernel groups are cut out of it the same way.
    """
    import torch.fx as fx

    graph = fx.Graph()
    nodes: dict[str, fx.Node] = {spec.name: graph.placeholder(spec.name) for spec in inputs}

    def node(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(node(v) for v in value)
        if isinstance(value, Ref):
            if value.name not in nodes:
                nodes[value.name] = graph.get_attr(value.name)
            return nodes[value.name]
        return value

    for call in calls:
        nodes[call.name] = graph.create_node(
            "call_function", call.target, node(call.args), node(call.kwargs), name=call.name
        )
    results = [nodes[name] for name in output_tensors]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    return fx.GraphModule(module, graph, class_name="RecordedGraph")


def _holds_tensor(value: Any) -> bool:
    return next(iter(_tensors(value)), None) is not None


def _tensors(value: Any) -> Any:
    """The tensors inside nested tuples, lists and dicts."""
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _qualname(func: Any) -> str:
    owner = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return f"{owner}.{name}" if owner else name
