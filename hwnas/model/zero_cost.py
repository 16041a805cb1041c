"""Zero-cost accuracy proxies of a supernet's subnets, on one minibatch with the supernet's weights.

grad-norm, SNIP, SynFlow and Jacobian covariance as Abdelfattah et al. (2021)
compute them, GradSign (Zhang and Jia, 2022) from per-example gradient signs,
the parameter count as the baseline they are measured against, and a RoBoT-style
(He et al., 2024) weighted combination fitted on a few measured subnets.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.search_space import Subnet

if TYPE_CHECKING:
    import torch

    from hwnas.model.supernet import Supernet

PROXIES = ("params", "grad_norm", "snip", "synflow", "jacob_cov", "gradsign")
# GradSign needs one backward pass per example; this many examples of the batch are used
GRADSIGN_EXAMPLES = 16


def proxy_scores(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    batch: tuple[torch.Tensor, torch.Tensor],
    proxies: Sequence[str] = PROXIES,
) -> dict[str, float]:
    """Each proxy's score for ``subnet`` (larger: predicted more accurate), from one labelled minibatch.

    The subnet is extracted with the supernet's weights; the supernet is not changed.
    """
    import torch

    unknown = [p for p in proxies if p not in PROXIES]
    if unknown:
        raise ConfigError(
            f"unknown zero-cost proxies {unknown}", hint=f"choose from {', '.join(PROXIES)}"
        )
    x, y = batch
    if len(x) < 2:
        raise ConfigError("zero-cost proxies need a minibatch of at least 2 examples")
    static = supernet.extract(module, subnet)
    x = supernet.adapt_input(x, subnet)
    scores: dict[str, float] = {}
    with torch.enable_grad():
        if "params" in proxies:
            scores["params"] = float(sum(p.numel() for p in static.parameters()))
        if "grad_norm" in proxies or "snip" in proxies:
            scores.update(_loss_gradient_scores(static, x, y, proxies))
        if "synflow" in proxies:
            scores["synflow"] = _synflow(static, x)
        if "jacob_cov" in proxies:
            scores["jacob_cov"] = _jacob_cov(static, x)
        if "gradsign" in proxies:
            scores["gradsign"] = _gradsign(static, x, y)
    return {p: scores[p] for p in proxies}


def _weights(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The conv and linear weights: what the pruning-at-init literature scores."""
    import torch

    return [
        m.weight
        for m in module.modules()
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))
        and m.weight.requires_grad
    ]


def _loss_gradient_scores(
    module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, proxies: Sequence[str]
) -> dict[str, float]:
    import torch

    module.train()  # batch statistics, as at initialisation-time pruning
    module.zero_grad()
    torch.nn.functional.cross_entropy(module(x), y).backward()
    weights = _weights(module)
    scores = {}
    if "grad_norm" in proxies:
        scores["grad_norm"] = sum(float(w.grad.norm()) for w in weights if w.grad is not None)
    if "snip" in proxies:
        scores["snip"] = sum(
            float((w.detach() * w.grad).abs().sum()) for w in weights if w.grad is not None
        )
    module.zero_grad()
    return scores


def _synflow(module: torch.nn.Module, x: torch.Tensor) -> float:
    """Data-free: |weights|, an all-ones input, gradient of the summed output, summed |w * g|."""
    import torch

    net = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    net.zero_grad()
    net(ones).sum().backward()
    total = sum(
        float((w.detach() * w.grad).abs().sum()) for w in _weights(net) if w.grad is not None
    )
    # scores span hundreds of orders of magnitude between subnets; compare their logs
    return math.log(total) if total > 0 else -math.inf


def _jacob_cov(module: torch.nn.Module, x: torch.Tensor) -> float:
    """How differently the network responds to different inputs: correlation of input Jacobians."""
    import torch

    module.train()
    inputs = x.detach().clone().requires_grad_(True)
    module.zero_grad()
    out = module(inputs)
    out.backward(torch.ones_like(out))
    jacobians = inputs.grad.reshape(len(inputs), -1).double().numpy()
    module.zero_grad()
    corr = np.corrcoef(jacobians)
    if not np.all(np.isfinite(corr)):
        return -1e9
    eigenvalues = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k)))


def _gradsign(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over weights of |sum over examples of the sign of the example's loss gradient|:
    large where examples agree on where each weight should go."""
    import torch

    module.eval()  # per-example gradients: batch statistics of one example mean nothing
    weights = _weights(module)
    signs = [torch.zeros_like(w) for w in weights]
    for i in range(min(GRADSIGN_EXAMPLES, len(x))):
        module.zero_grad()
        torch.nn.functional.cross_entropy(module(x[i : i + 1]), y[i : i + 1]).backward()
        for total, w in zip(signs, weights, strict=True):
            if w.grad is not None:
                total += torch.sign(w.grad)
    module.zero_grad()
    return float(sum(s.abs().sum() for s in signs))


# -- RoBoT-style weighted combination --------------------------------------------------


def standardised_ranks(scores: np.ndarray) -> np.ndarray:
    """Each column's ranks scaled to [0, 1] (ties share a rank): proxies on incomparable scales."""
    from scipy.stats import rankdata

    scores = np.atleast_2d(scores)
    n = len(scores)
    return np.column_stack([(rankdata(c) - 1) / max(n - 1, 1) for c in scores.T])


def fit_combination(
    scores: np.ndarray, accuracy: Sequence[float], *, trials: int = 2000, seed: int = 0
) -> np.ndarray:
    """Weights of the proxies (one per column of ``scores``) whose weighted sum of standardised
    ranks best agrees (Kendall tau) with measured accuracies, as RoBoT searches them (by random
    directions here rather than Bayesian optimisation: with a handful of proxies they cover it)."""
    from scipy.stats import kendalltau

    ranks = standardised_ranks(scores)
    accuracy = np.asarray(accuracy, dtype=float)
    rng = np.random.default_rng(seed)
    candidates = np.vstack([np.eye(ranks.shape[1]), rng.normal(size=(trials, ranks.shape[1]))])
    best, best_tau = candidates[0], -np.inf
    for weights in candidates:
        tau = kendalltau(ranks @ weights, accuracy).statistic
        if np.isfinite(tau) and tau > best_tau + 1e-12:
            best, best_tau = weights, tau
    return best / np.abs(best).sum()


def combined_score(
    scores: np.ndarray, weights: np.ndarray, reference: np.ndarray | None = None
) -> np.ndarray:
    """The weighted sum of standardised ranks; ranks are taken within ``reference`` rows when given
    (so new subnets are scored on the scale the weights were fitted on)."""
    scores = np.atleast_2d(scores)
    if reference is None:
        return standardised_ranks(scores) @ weights
    reference = np.atleast_2d(reference)
    ranks = np.column_stack(
        [
            np.searchsorted(np.sort(reference[:, j]), scores[:, j], side="right")
            / max(len(reference), 1)
            for j in range(scores.shape[1])
        ]
    )
    return ranks @ weights


def proxy_table(
    supernet: Supernet,
    module: torch.nn.Module,
    subnets: Sequence[Subnet],
    batch: tuple[torch.Tensor, torch.Tensor],
    proxies: Sequence[str] = PROXIES,
) -> dict[str, dict[str, float]]:
    """``subnet key -> {proxy: score}`` for many subnets, one minibatch for all."""
    return {s.key: proxy_scores(supernet, module, s, batch, proxies) for s in subnets}


def as_matrix(
    table: Mapping[str, Mapping[str, float]], keys: Sequence[str], proxies: Sequence[str]
) -> np.ndarray:
    return np.array([[table[k][p] for p in proxies] for k in keys], dtype=float)
