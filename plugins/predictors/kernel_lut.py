"""The ``kernel-lut`` predictor: latency as a sum of measured per-kernel latencies, plus a learned correction.

Kernels are the graph IR's fused kernel groups, named by stable keys; each key
is measured once on the target (``measure_kernel``) and cached in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import ConfigError, Predictor, PredictorSettings

CORRECTIONS = ("auto", "none", "constant", "affine", "ridge")


@dataclass(frozen=True)
class KernelLUTSettings(PredictorSettings):
    """``correction`` of what the sum misses (launch overheads, fusion, cache effects): ``none``;
    ``constant`` (an offset: the median residual); ``affine`` (a scale and an offset of the sum, by
    least squares); ``ridge`` on per-kernel counts, fitted on the residual; ``auto`` picks the one
    with the most held-out predictions within ±10 % in ``folds``-fold cross-validation, so a
    correction is used only where it helps. ``alphas``: ridge penalties tried by leave-one-out.

    The target scale defaults to ``raw``: a table's errors are additive (a kernel timed slow
    adds the same milliseconds to every network holding it), and a correction fitted on
    log-ratios is multiplicative and cannot repair them."""

    target: str = "raw"
    correction: str = "auto"
    folds: int = 5
    alphas: tuple[float, ...] = (1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


class KernelLUTPredictor(Predictor):
    """Per-kernel latency lookup table, as nn-Meter and HW-NAS papers build them.

    ``X`` holds, per architecture, the keys of its kernels (a key repeated for a
    kernel that runs several times). A key missing from the table is measured
    with ``measure_kernel(key) -> ms`` and remembered; ``table`` pre-fills it
    (e.g. from an earlier run on the same target fingerprint).
    """

    name = "kernel-lut"
    description = "sum of measured per-kernel latencies + ridge correction"
    settings_class = KernelLUTSettings
    input_kind = "kernels"

    def __init__(
        self,
        settings: PredictorSettings | None = None,
        *,
        measure_kernel: Callable[[str], float] | None = None,
        table: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(settings)
        if self.settings.correction not in CORRECTIONS:  # type: ignore[attr-defined]
            raise ConfigError(
                f"kernel-lut: unknown correction {self.settings.correction!r}",  # type: ignore[attr-defined]
                hint=f"choose one of {', '.join(CORRECTIONS)}",
            )
        self.measure_kernel = measure_kernel
        self.correction = ""
        self.table: dict[str, float] = dict(table or {})
        self.kernels_measured = 0

    def fresh(self, **fields: Any) -> KernelLUTPredictor:
        """An unfitted copy sharing this one's table and measurer, so no kernel is measured twice."""
        import dataclasses

        copy = KernelLUTPredictor(
            dataclasses.replace(self.settings, **fields), measure_kernel=self.measure_kernel
        )
        copy.table = self.table
        return copy

    def kernel_latency(self, key: str) -> float:
        if key not in self.table:
            if self.measure_kernel is None:
                raise ConfigError(
                    f"kernel-lut: kernel {key!r} is not in the lookup table",
                    hint="pass measure_kernel=... so that new kernels are measured, or a table that has it",
                )
            value = float(self.measure_kernel(key))
            if not np.isfinite(value):
                raise ConfigError(f"kernel-lut: measuring kernel {key!r} gave {value}")
            self.table[key] = value
            self.kernels_measured += 1
        return self.table[key]

    def kernel_sums(self, X: Sequence[Sequence[str]]) -> np.ndarray:
        """The plain lookup-table estimate: the sum of each architecture's kernel latencies."""
        return np.array(
            [sum(self.kernel_latency(k) for k in kernels) for kernels in X], dtype=float
        )

    def _base(self, X: Sequence[Sequence[str]]) -> np.ndarray:
        sums = self.kernel_sums(X)
        if self.target != "log":
            return sums
        # Table sums can reach zero or below where kernels were measured as deltas; keep logs finite.
        return np.log(np.maximum(sums, self._floor))

    def _counts(self, X: Sequence[Sequence[str]]) -> np.ndarray:
        counts = np.zeros((len(X), len(self._vocabulary)))
        for row, kernels in enumerate(X):
            for key in kernels:
                column = self._vocabulary.get(key)
                if column is not None:
                    counts[row, column] += 1
        return counts

    def _fit(self, X: Any, y: np.ndarray) -> None:
        sums = self.kernel_sums(X)
        positive = sums[sums > 0]
        self._floor = 0.5 * float(positive.min()) if positive.size else 1e-6
        self._vocabulary = {
            k: i for i, k in enumerate(sorted({k for kernels in X for k in kernels}))
        }
        base = self._base(X)
        counts = self._counts(X)
        choice = self.settings.correction  # type: ignore[attr-defined]
        if choice == "auto":
            choice = self._cross_validated_choice(counts, base, y)
        self.correction = choice
        self._model = self._correction_model(choice, counts, base, y)

    def _correction_model(
        self, choice: str, counts: np.ndarray, base: np.ndarray, y: np.ndarray
    ) -> Any:
        """A model of the residual ``y - base`` from the columns ``[base, counts...]``."""
        residual = y - base
        columns = np.column_stack([base, counts])
        if choice == "none":
            return None
        if choice == "constant":
            from sklearn.dummy import DummyRegressor

            return DummyRegressor(strategy="median").fit(columns, residual)
        if choice == "affine":
            from sklearn.compose import ColumnTransformer
            from sklearn.linear_model import LinearRegression
            from sklearn.pipeline import make_pipeline

            only_base = ColumnTransformer([("base", "passthrough", [0])])
            return make_pipeline(only_base, LinearRegression()).fit(columns, residual)
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline

        only_counts = ColumnTransformer([("counts", "passthrough", slice(1, None))])
        return make_pipeline(only_counts, RidgeCV(alphas=self.settings.alphas)).fit(  # type: ignore[attr-defined]
            columns, residual
        )

    def _cross_validated_choice(self, counts: np.ndarray, base: np.ndarray, y: np.ndarray) -> str:
        """The correction with most held-out predictions within ±10 % (ties: the simpler one)."""
        folds = min(self.settings.folds, len(y))  # type: ignore[attr-defined]
        if folds < 2:
            return "none"
        assignment = np.arange(len(y)) % folds
        columns = np.column_stack([base, counts])
        log = self.target == "log"
        scores = {}
        for choice in CORRECTIONS[1:]:
            within = 0
            for fold in range(folds):
                train, test = assignment != fold, assignment == fold
                model = (
                    self._correction_model(choice, counts[train], base[train], y[train])
                    if train.sum() > 2
                    else None
                )
                estimate = base[test] + (model.predict(columns[test]) if model is not None else 0.0)
                truth = np.exp(y[test]) if log else y[test]
                predicted = np.exp(estimate) if log else estimate
                within += int(np.sum(np.abs(predicted - truth) <= 0.1 * np.abs(truth)))
            scores[choice] = within
        return max(
            CORRECTIONS[1:], key=lambda c: scores[c]
        )  # max keeps the first (simplest) of ties

    def _predict(self, X: Any) -> np.ndarray:
        base = self._base(X)
        if self._model is None:
            return base
        return base + self._model.predict(np.column_stack([base, self._counts(X)]))


@hwnas.hookimpl
def hwnas_register_predictors(register: Any) -> None:
    register(KernelLUTPredictor)
