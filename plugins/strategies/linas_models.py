"""The predictors LINAS fits each round: feature sets (genes, free statistics, a metric's prior) and a held-out choice of model.

Per metric, the (feature set, predictor, target scale) triple is chosen by
cross-validation on what was measured, and chosen again whenever the measured
set has grown by half. With few measurements the small "prior" set (the one
statistic that grows with the metric, calibrated) tends to win; with more, the
richer sets do: pretraining on free statistics, refined by what is measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwnas import ConfigError, Predictor, predictor_class

# re-choose the model once the training set is this much larger than at the last choice
RESELECT_GROWTH = 1.5
FOLDS = 5
# feature sets, by the blocks they join
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "prior": ("prior",),
    "statistics": ("statistics",),
    "genes+statistics": ("genes", "statistics"),
    "genes": ("genes",),
}

Blocks = Mapping[str, np.ndarray]


def statistic_features(stats: np.ndarray) -> np.ndarray:
    """Each statistic as it is and as sign(x) log(1 + |x|): costs grow additively, accuracy
    with the log of size; a linear model on both can follow either."""
    return np.hstack([stats, np.sign(stats) * np.log1p(np.abs(stats))])


def assemble(blocks: Blocks, feature_set: str) -> np.ndarray:
    return np.hstack([blocks[b] for b in FEATURE_SETS[feature_set]])


@dataclass
class Choice:
    """The model chosen for one metric, and the training-set size it was chosen at."""

    feature_set: str
    predictor: str
    target: str
    at: int
    error: float


@dataclass
class FittedMetric:
    predictor: Predictor
    feature_set: str

    def predict(self, blocks: Blocks) -> np.ndarray:
        return self.predictor.predict(assemble(blocks, self.feature_set))


class MetricModel:
    """Fits one metric's predictor on the best (feature set, predictor, target scale) by
    cross-validated median relative error; one candidate of each is no choice at all."""

    def __init__(self, metric: str, predictors: Sequence[str], feature_sets: Sequence[str]) -> None:
        self.metric = metric
        self.predictors = tuple(predictors)
        self.feature_sets = tuple(feature_sets)
        for name in self.predictors:
            if predictor_class(name).input_kind != "vector":
                raise ConfigError(
                    f"linas: predictor {name!r} for {metric!r} needs {predictor_class(name).input_kind} inputs",
                    hint="LINAS fits vector predictors (ridge, lstsq, lad, svr, mlp, gbdt)",
                )
        unknown = [f for f in self.feature_sets if f not in FEATURE_SETS]
        if unknown:
            raise ConfigError(
                f"linas: unknown feature set(s) {unknown}",
                hint=f"choose from {', '.join(FEATURE_SETS)}",
            )
        self.ranking: list[Choice] = []

    @property
    def choice(self) -> Choice | None:
        return self.ranking[0] if self.ranking else None

    def fit(self, blocks: Blocks, y: np.ndarray, rank: int = 0) -> FittedMetric:
        """Fit the ``rank``-th best model (0: the best; past the last, the last)."""
        if not self.ranking or len(y) >= RESELECT_GROWTH * self.ranking[0].at:
            self.ranking = self._rank(blocks, y)
        choice = self.ranking[min(rank, len(self.ranking) - 1)]
        predictor = predictor_class(choice.predictor).with_target(choice.target)
        predictor.fit(assemble(blocks, choice.feature_set), y)
        return FittedMetric(predictor, choice.feature_set)

    def _rank(self, blocks: Blocks, y: np.ndarray) -> list[Choice]:
        """Every option, best first: one per feature set (its best predictor and target scale)."""
        sets = [f for f in self.feature_sets if all(b in blocks for b in FEATURE_SETS[f])]
        targets = ("raw", "log") if np.all(y > 0) else ("raw",)
        options = [(f, p, t) for f in sets for p in self.predictors for t in targets]
        folds = min(FOLDS, len(y) // 2)
        if not options:
            raise ConfigError(f"linas: no feature set of {self.feature_sets} is available")
        if len(options) == 1 or folds < 2:
            return [Choice(*options[0], len(y), float("nan"))]
        assignment = np.random.default_rng(len(y)).permutation(len(y)) % folds
        scale = np.maximum(np.abs(y), 1e-12)
        best: dict[str, Choice] = {}
        for feature_set, name, target in options:
            X = assemble(blocks, feature_set)
            predicted = np.empty(len(y))
            for fold in range(folds):
                train, test = assignment != fold, assignment == fold
                model = predictor_class(name).with_target(target).fit(X[train], y[train])
                predicted[test] = model.predict(X[test])
            error = float(np.median(np.abs(predicted - y) / scale))
            if feature_set not in best or error < best[feature_set].error - 1e-12:
                best[feature_set] = Choice(feature_set, name, target, len(y), error)
        return sorted(best.values(), key=lambda c: c.error)
