"""The conformance kit's models: a conv net, a two-input/two-output model and an attention block.

Each comes with two sets of inputs whose outputs differ, so a target that
ignores its inputs (or mixes them up) fails; torch is imported only when one is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from hwnas.ir import GraphIR


@dataclass(frozen=True)
class KitModel:
    """A static torch module, the inputs its IR is built (and measured) with, and other inputs."""

    name: str
    module: Any
    inputs: tuple[Any, ...]
    other_inputs: tuple[Any, ...]

    def ir(self) -> GraphIR:
        from hwnas.ir import GraphIR

        return GraphIR.from_module(self.module, self.inputs, name=f"kit-{self.name}")

    def reference(self, inputs: tuple[Any, ...]) -> list[np.ndarray]:
        """The torch outputs on ``inputs``, as numpy arrays in output order."""
        import torch

        with torch.no_grad():
            result = self.module(*inputs)
        leaves = result if isinstance(result, (tuple, list)) else (result,)
        return [t.detach().cpu().numpy() for t in leaves]

    def arrays(self, inputs: tuple[Any, ...]) -> list[np.ndarray]:
        return [t.detach().cpu().numpy() for t in inputs]


def conv_net(seed: int = 0) -> KitModel:
    """conv-BN-ReLU6, depthwise conv-BN, pool to 4x4, linear; non-trivial BN statistics so folding is checked.

    The pool keeps 4x4 cells (16 pixels each) so the outputs for two inputs stay far apart
    even in bf16's tolerance: a pool to 1x1 averages the input away.
    """
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 5),
    ).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        net[-1].weight.normal_(0.0, 1.0)  # pooled features are small: make their changes visible
    return KitModel(f"conv{seed}", net, *_inputs(seed, (1, 3, 16, 16)))


def two_inputs_two_outputs(seed: int = 0) -> KitModel:
    """An image and a vector in; a head and a gated feature map out (input order and output order both matter)."""
    import torch

    from hwnas.testing.kit_modules import TwoInTwoOut

    torch.manual_seed(seed)
    net = TwoInTwoOut().eval()
    image, other_image = _inputs(seed, (1, 3, 8, 8))
    vector, other_vector = _inputs(seed + 1, (1, 6))
    return KitModel("two-io", net, image + vector, other_image + other_vector)


def attention_block(seed: int = 0) -> KitModel:
    """Pre-norm single-head self-attention with residuals and a GELU MLP over 6 tokens of width 16."""
    import torch

    from hwnas.testing.kit_modules import Attention

    torch.manual_seed(seed)
    return KitModel("attention", Attention().eval(), *_inputs(seed, (1, 6, 16)))


def _inputs(seed: int, shape: tuple[int, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    import torch

    generator = torch.Generator().manual_seed(1000 + seed)
    first = torch.randn(shape, generator=generator)
    # shifted and wider, so even pooled features differ well beyond any tolerance
    other = 1.5 * torch.randn(shape, generator=generator) + 0.5
    return (first,), (other,)


#: Every kit model, by name: what ``check_target`` compiles and runs.
KIT_MODELS: dict[str, Callable[[], KitModel]] = {
    "conv": conv_net,
    "two-io": two_inputs_two_outputs,
    "attention": attention_block,
}


def kit_models() -> list[KitModel]:
    """One of each kit model, built now (imports torch)."""
    return [build() for build in KIT_MODELS.values()]
