"""pymoo problem and operators over a search space's integer encoding, for the NSGA-II and LINAS strategies.

Canonicalisation, candidate pools and "already measured" checks come in as
callables, so nothing here holds a strategy and pymoo objects stay simple.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from hwnas_plugins.strategies.encoding import row_key

Batch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class EncodedProblem(Problem):
    """The integer box of a search space; ``evaluate_batch`` (if given) maps X to (F, G).

    Without ``evaluate_batch`` the problem is only a shape, for ask/tell use
    where F and G arrive from real measurements.
    """

    def __init__(
        self, upper: np.ndarray, n_obj: int, n_constr: int, evaluate_batch: Batch | None = None
    ) -> None:
        super().__init__(
            n_var=len(upper),
            n_obj=n_obj,
            n_ieq_constr=n_constr,
            xl=np.zeros(len(upper)),
            xu=upper,
            vtype=int,
        )
        self._evaluate_batch = evaluate_batch

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if self._evaluate_batch is None:
            raise RuntimeError("EncodedProblem without evaluate_batch is for ask/tell only")
        F, G = self._evaluate_batch(np.asarray(X, dtype=int))
        out["F"] = F
        if self.n_ieq_constr:
            out["G"] = G


class CallbackSampling(Sampling):
    """Initial population from a callable ``sample(n) -> X`` (space- or pool-aware random rows)."""

    def __init__(self, sample: Callable[[int], np.ndarray]) -> None:
        super().__init__()
        self._sample = sample

    def _do(
        self, problem: Problem, n_samples: int, *args: Any, random_state: Any = None, **kwargs: Any
    ) -> np.ndarray:
        return self._sample(n_samples)


class CallbackRepair(Repair):
    """Makes rows admissible: canonical, and projected onto the candidate pool if there is one."""

    def __init__(self, repair: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self._repair = repair

    def _do(self, problem: Problem, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        return self._repair(np.asarray(X))


class RandomResetMutation(Mutation):
    """Each gene, with probability ``genes / n_var``, takes a different choice uniformly: right for categorical genes."""

    def __init__(self, genes: float = 1.0) -> None:
        super().__init__(prob=1.0)
        self._genes = genes

    def _do(
        self, problem: Problem, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any
    ) -> np.ndarray:
        X = np.asarray(X, dtype=int).copy()
        upper = np.asarray(problem.xu, dtype=int)
        mutate = random_state.random(X.shape) < self._genes / X.shape[1]
        mutate &= upper > 0
        # a draw among the other choices: shift by 1..upper modulo the number of choices
        shift = np.floor(random_state.random(X.shape) * np.maximum(upper, 1)).astype(int) + 1
        X[mutate] = ((X + shift) % (upper + 1))[mutate]
        return X


class KnownRowElimination(DuplicateElimination):
    """Drops rows equal to another in the batch, to ``other`` populations, or to ``known()`` rows (measured ones)."""

    def __init__(self, known: Callable[[], set[bytes]] = set) -> None:
        super().__init__()
        self._known = known

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        seen = set(self._known()) if other is None else {row_key(x) for x in other.get("X")}
        for i, x in enumerate(pop.get("X")):
            key = row_key(x)
            if key in seen:
                is_duplicate[i] = True
            elif other is None:
                seen.add(key)
        return is_duplicate
