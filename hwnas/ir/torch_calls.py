"""Which aten op a torch function call is, as ``torch.export`` records it: the table :mod:`hwnas.ir.from_forward` reads.

Each rule takes the arguments a model passed to a torch function (``F.conv2d``,
``Tensor.add``...) and returns the aten overload and arguments torch.export's
graph holds for that call, so both ways of building an IR give the same ops.
Recording the calls and turning them into ops is not done here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: (aten overload, positional args, keyword args)
AtenCall = tuple[Any, tuple[Any, ...], dict[str, Any]]
Rule = Callable[[tuple[Any, ...], dict[str, Any]], AtenCall]


class NotRecordable(Exception):
    """A call the table has no rule for (or a variant of one it does not cover)."""


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _not_inplace(args: tuple[Any, ...], kwargs: dict[str, Any], index: int = 1) -> None:
    if _arg(args, kwargs, index, "inplace", False):
        raise NotRecordable("in-place activation")


def _sizes(args: tuple[Any, ...]) -> list[int]:
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike: the size list after ``self``."""
    rest = args[1:]
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        return [int(v) for v in rest[0]]
    return [int(v) for v in rest]


def _dims(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def rules() -> dict[Any, Rule]:
    """Torch callables (as a ``TorchFunctionMode`` sees them) -> rule. Built on first use (imports torch)."""
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten
    table: dict[Any, Rule] = {}

    def unary(overload: Any, *functions: Any, inplace_index: int | None = None) -> None:
        def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
            if inplace_index is not None:
                _not_inplace(args, kwargs, inplace_index)
            return overload, (args[0],), {}

        for function in functions:
            table[function] = rule

    unary(aten.relu.default, F.relu, inplace_index=1)
    unary(aten.relu.default, torch.relu, torch.Tensor.relu)
    unary(aten.hardswish.default, F.hardswish, inplace_index=1)
    unary(aten.hardsigmoid.default, F.hardsigmoid, inplace_index=1)
    unary(aten.silu.default, F.silu, inplace_index=1)
    unary(aten.sigmoid.default, torch.sigmoid, torch.Tensor.sigmoid)
    unary(aten.tanh.default, torch.tanh, torch.Tensor.tanh)

    def conv(overload: Any, rank: int) -> Rule:
        def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
            padding = _arg(args, kwargs, 4, "padding", 0)
            if isinstance(padding, str):
                raise NotRecordable("string padding")
            pair = lambda v: [int(v)] * rank if isinstance(v, int) else [int(x) for x in v]  # noqa: E731
            return (
                overload,
                (
                    args[0],
                    _arg(args, kwargs, 1, "weight", None),
                    _arg(args, kwargs, 2, "bias", None),
                    pair(_arg(args, kwargs, 3, "stride", 1)),
                    pair(padding),
                    pair(_arg(args, kwargs, 5, "dilation", 1)),
                    int(_arg(args, kwargs, 6, "groups", 1)),
                ),
                {},
            )

        return rule

    table[torch.conv2d] = conv(aten.conv2d.default, 2)
    table[torch.conv1d] = conv(aten.conv1d.default, 1)

    def batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        if _arg(args, kwargs, 5, "training", False):
            raise NotRecordable("batch norm on batch statistics (training mode)")
        return (
            aten.batch_norm.default,
            (
                args[0],
                _arg(args, kwargs, 3, "weight", None),
                _arg(args, kwargs, 4, "bias", None),
                _arg(args, kwargs, 1, "running_mean", None),
                _arg(args, kwargs, 2, "running_var", None),
                False,
                float(_arg(args, kwargs, 6, "momentum", 0.1)),
                float(_arg(args, kwargs, 7, "eps", 1e-5)),
                False,  # cudnn_enabled, as torch.export records it on CPU
            ),
            {},
        )

    table[F.batch_norm] = batch_norm

    def layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return (
            aten.layer_norm.default,
            (
                args[0],
                _dims(_arg(args, kwargs, 1, "normalized_shape", None)),
                _arg(args, kwargs, 2, "weight", None),
                _arg(args, kwargs, 3, "bias", None),
                float(_arg(args, kwargs, 4, "eps", 1e-5)),
                False,
            ),
            {},
        )

    table[F.layer_norm] = layer_norm

    def linear(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return (
            aten.linear.default,
            (args[0], _arg(args, kwargs, 1, "weight", None), _arg(args, kwargs, 2, "bias", None)),
            {},
        )

    table[F.linear] = linear

    def dropout(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        if _arg(args, kwargs, 3, "inplace", False):
            raise NotRecordable("in-place dropout")
        train = bool(_arg(args, kwargs, 2, "training", True))
        if train:
            raise NotRecordable("dropout in training mode")
        return aten.dropout.default, (args[0], float(_arg(args, kwargs, 1, "p", 0.5)), train), {}

    table[F.dropout] = dropout

    def gelu(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        approximate = str(_arg(args, kwargs, 1, "approximate", "none"))
        return aten.gelu.default, (args[0],), {"approximate": approximate}

    table[F.gelu] = gelu

    def embedding(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        weight = _arg(args, kwargs, 1, "weight", None)
        if _arg(args, kwargs, 3, "max_norm", None) is not None:
            raise NotRecordable("embedding with max_norm (it renormalises the table in place)")
        padding_idx = _arg(args, kwargs, 2, "padding_idx", None)
        if padding_idx is None:
            padding_idx = -1
        elif padding_idx < 0:
            padding_idx = int(weight.shape[0]) + int(padding_idx)
        return (
            aten.embedding.default,
            (
                weight,
                args[0],
                int(padding_idx),
                bool(_arg(args, kwargs, 5, "scale_grad_by_freq", False)),
                bool(_arg(args, kwargs, 6, "sparse", False)),
            ),
            {},
        )

    table[F.embedding] = embedding

    def max_pool2d(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        if _arg(args, kwargs, 6, "return_indices", False):
            raise NotRecordable("max pooling that returns indices")
        pair = lambda v: [int(v)] * 2 if isinstance(v, int) else [int(x) for x in v]  # noqa: E731
        kernel = pair(_arg(args, kwargs, 1, "kernel_size", None))
        stride = _arg(args, kwargs, 2, "stride", None)
        return (
            aten.max_pool2d.default,
            (
                args[0],
                kernel,
                [] if stride is None else pair(stride),
                pair(_arg(args, kwargs, 3, "padding", 0)),
                pair(_arg(args, kwargs, 4, "dilation", 1)),
                bool(_arg(args, kwargs, 5, "ceil_mode", False)),
            ),
            {},
        )

    table[F.max_pool2d] = max_pool2d

    def binary(overload: Any, *functions: Any) -> None:
        def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
            if not isinstance(args[0], torch.Tensor):
                raise NotRecordable("a scalar on the left of a tensor operator")
            if len(args) > 2 or set(kwargs) - {"other"}:
                raise NotRecordable("a tensor operator with alpha or out")
            return overload, (args[0], _arg(args, kwargs, 1, "other", None)), {}

        for function in functions:
            table[function] = rule

    binary(aten.add.Tensor, torch.add, torch.Tensor.add, torch.Tensor.__add__)
    binary(aten.mul.Tensor, torch.mul, torch.Tensor.mul, torch.Tensor.__mul__)
    binary(aten.sub.Tensor, torch.sub, torch.Tensor.sub, torch.Tensor.__sub__)
    binary(aten.div.Tensor, torch.div, torch.Tensor.div, torch.Tensor.__truediv__)

    def matmul(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return aten.matmul.default, (args[0], _arg(args, kwargs, 1, "other", None)), {}

    for function in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__):
        table[function] = matmul

    def mean(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        dim = _arg(args, kwargs, 1, "dim", None)
        if dim is None or kwargs.get("dtype") is not None:
            raise NotRecordable("mean over every axis or with a dtype")
        return (
            aten.mean.dim,
            (args[0], _dims(dim), bool(_arg(args, kwargs, 2, "keepdim", False))),
            {},
        )

    table[torch.mean] = table[torch.Tensor.mean] = mean

    def flatten(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return (
            aten.flatten.using_ints,
            (
                args[0],
                int(_arg(args, kwargs, 1, "start_dim", 0)),
                int(_arg(args, kwargs, 2, "end_dim", -1)),
            ),
            {},
        )

    table[torch.flatten] = table[torch.Tensor.flatten] = flatten

    def transpose(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return (
            aten.transpose.int,
            (args[0], int(_arg(args, kwargs, 1, "dim0", 0)), int(_arg(args, kwargs, 2, "dim1", 1))),
            {},
        )

    table[torch.transpose] = table[torch.Tensor.transpose] = transpose

    def permute(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return aten.permute.default, (args[0], _sizes(args) or _dims(kwargs["dims"])), {}

    table[torch.permute] = table[torch.Tensor.permute] = permute

    def reshape(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return aten.reshape.default, (args[0], _sizes(args) or _dims(kwargs["shape"])), {}

    table[torch.reshape] = table[torch.Tensor.reshape] = reshape

    def view(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        if len(args) == 2 and not isinstance(args[1], (int, list, tuple)):
            raise NotRecordable("view as another dtype")
        return aten.view.default, (args[0], _sizes(args)), {}

    table[torch.Tensor.view] = view

    def expand(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return aten.expand.default, (args[0], _sizes(args)), {}

    table[torch.Tensor.expand] = expand

    def cat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        return (
            aten.cat.default,
            (list(_arg(args, kwargs, 0, "tensors", ())), int(_arg(args, kwargs, 1, "dim", 0))),
            {},
        )

    table[torch.cat] = cat

    def softmax(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        if kwargs.get("dtype") is not None or (len(args) > 2 and args[2] is not None):
            raise NotRecordable("softmax with a dtype")
        dim = _arg(args, kwargs, 1, "dim", None)
        if dim is None:
            raise NotRecordable("softmax without a dim")
        return aten.softmax.int, (args[0], int(dim)), {}

    table[torch.softmax] = table[torch.Tensor.softmax] = table[F.softmax] = softmax

    def getitem(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall:
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        *leading, last = index
        full = slice(None, None, None)
        plain = all(isinstance(i, slice) and i == full for i in leading)
        if not isinstance(last, int) or isinstance(last, bool) or not plain:
            raise NotRecordable(f"indexing with {args[1]!r} (only x[..., :, i] style selects)")
        return aten.select.int, (args[0], len(leading), int(last)), {}

    table[torch.Tensor.__getitem__] = getitem
    return table


def aten_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AtenCall | None:
    """A call that already is an aten op (an fx graph of aten calls, e.g. a cut-out kernel), as is."""
    import torch

    if isinstance(func, torch._ops.OpOverload) and func.namespace == "aten":
        return func, args, dict(kwargs)
    return None


# -- output shapes ---------------------------------------------------------------------------------
#
# Recording runs no arithmetic: each recorded call's result is an empty meta tensor of
# the shape these functions give (torch's own meta kernels cost ~1 ms per call here).
# Ops without one run their meta kernel. Tests hold every shape to torch.export's.

Shape = tuple[int, ...]


def _broadcast(*shapes: Shape) -> Shape:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise NotRecordable(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _conv_shape(args: tuple[Any, ...]) -> Shape:
    x, w, _, stride, padding, dilation = args[:6]
    spatial = [
        _window(size, k, s, p, d)
        for size, k, s, p, d in zip(
            x.shape[2:], w.shape[2:], stride, padding, dilation, strict=True
        )
    ]
    return (x.shape[0], w.shape[0], *spatial)


def _pool_shape(args: tuple[Any, ...]) -> Shape:
    x, kernel, stride, padding, dilation, ceil_mode = args[:6]
    if ceil_mode:
        raise NotRecordable("ceil-mode pooling")
    stride = stride or kernel
    spatial = [
        _window(size, k, s, p, d)
        for size, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation, strict=True)
    ]
    return (*x.shape[:-2], *spatial)


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return (*b[:-2], b[-1])
    if len(b) == 1:
        return a[:-1]
    return (*_broadcast(a[:-2], b[:-2]), a[-2], b[-1])


def _reshape_shape(x: Shape, sizes: Sequence[int]) -> Shape:
    sizes = list(sizes)
    if sizes.count(-1) == 1:
        known = 1
        for s in sizes:
            known *= s if s != -1 else 1
        total = 1
        for s in x:
            total *= s
        sizes[sizes.index(-1)] = total // known if known else 0
    return tuple(sizes)


def _expand_shape(x: Shape, sizes: Sequence[int]) -> Shape:
    offset = len(sizes) - len(x)
    return tuple(x[i - offset] if s == -1 else s for i, s in enumerate(sizes))


def _mean_shape(x: Shape, dims: Sequence[int], keep: bool) -> Shape:
    axes = {d % len(x) for d in dims}
    if keep:
        return tuple(1 if i in axes else s for i, s in enumerate(x))
    return tuple(s for i, s in enumerate(x) if i not in axes)


def _flatten_shape(x: Shape, start: int, end: int) -> Shape:
    if not x:
        return (1,)
    start, end = start % len(x), end % len(x)
    merged = 1
    for s in x[start : end + 1]:
        merged *= s
    return (*x[:start], merged, *x[end + 1 :])


def _transpose_shape(x: Shape, a: int, b: int) -> Shape:
    dims = list(x)
    a, b = a % len(x), b % len(x)
    dims[a], dims[b] = dims[b], dims[a]
    return tuple(dims)


def _cat_shape(tensors: Sequence[Any], dim: int) -> Shape:
    first = tuple(tensors[0].shape)
    dim %= len(first)
    return (*first[:dim], sum(int(t.shape[dim]) for t in tensors), *first[dim + 1 :])


def output_shape(
    target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> tuple[Shape, Any] | None:
    """``(shape, dtype)`` of what aten op ``target`` returns for these arguments; None if not known here."""
    import torch

    name = str(target)
    args = _schema_args(target, args, kwargs or {})
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if name in _SAME_SHAPE and x is not None:
        return tuple(x.shape), x.dtype
    shape = tuple(x.shape) if x is not None else ()
    if name in ("aten.conv1d.default", "aten.conv2d.default"):
        return _conv_shape(args), x.dtype
    if name in ("aten.add.Tensor", "aten.mul.Tensor", "aten.sub.Tensor", "aten.div.Tensor"):
        other = args[1]
        dtype = torch.result_type(x, other)
        if name == "aten.div.Tensor" and not dtype.is_floating_point:
            return None  # true division of integers makes floats; leave it to the meta kernel
        return _broadcast(shape, tuple(getattr(other, "shape", ()))), dtype
    if name == "aten.matmul.default":
        return _matmul_shape(shape, tuple(args[1].shape)), x.dtype
    if name == "aten.linear.default":
        return (*shape[:-1], int(args[1].shape[0])), x.dtype
    if name == "aten.mean.dim":
        return _mean_shape(shape, args[1], bool(args[2]) if len(args) > 2 else False), x.dtype
    if name == "aten.flatten.using_ints":
        return _flatten_shape(shape, int(args[1]), int(args[2])), x.dtype
    if name in ("aten.reshape.default", "aten.view.default"):
        return _reshape_shape(shape, args[1]), x.dtype
    if name == "aten.transpose.int":
        return _transpose_shape(shape, int(args[1]), int(args[2])), x.dtype
    if name == "aten.permute.default":
        return tuple(shape[d % len(shape)] for d in args[1]), x.dtype
    if name == "aten.expand.default":
        return _expand_shape(shape, args[1]), x.dtype
    if name == "aten.cat.default":
        return _cat_shape(args[0], int(args[1])), args[0][0].dtype
    if name == "aten.select.int":
        dim = int(args[1]) % len(shape)
        return (*shape[:dim], *shape[dim + 1 :]), x.dtype
    if name == "aten.embedding.default":
        return (*tuple(args[1].shape), int(args[0].shape[1])), args[0].dtype
    if name == "aten.max_pool2d.default":
        return _pool_shape(args), x.dtype
    return None


def _schema_args(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Every positional argument of the op's schema: given, passed by name, or the default."""
    schema = getattr(target, "_schema", None)
    if schema is None or (len(args) >= len(schema.arguments) and not kwargs):
        return args
    full = list(args)
    for argument in schema.arguments[len(args) :]:
        if argument.kwarg_only:
            break
        if argument.name in kwargs:
            full.append(kwargs[argument.name])
        elif argument.has_default_value():
            full.append(argument.default_value)
        else:
            break
    return tuple(full)


#: aten ops whose output has the shape and dtype of their first input
_SAME_SHAPE = frozenset(
    {
        "aten.relu.default",
        "aten.hardswish.default",
        "aten.hardsigmoid.default",
        "aten.silu.default",
        "aten.sigmoid.default",
        "aten.tanh.default",
        "aten.gelu.default",
        "aten.dropout.default",
        "aten.batch_norm.default",
        "aten.layer_norm.default",
        "aten.softmax.int",
    }
)
