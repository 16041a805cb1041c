"""The ``lstsq`` and ``lad`` predictors: an unregularised linear fit with an intercept, by squared or absolute error.

``lstsq`` on a handful of structural counts (ops per kind) is the baseline every
latency predictor must beat; ``lad`` is the same model fitted robustly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import Predictor, PredictorSettings
from hwnas_plugins.predictors.feature_scaling import Standardiser


@dataclass(frozen=True)
class LinearSettings(PredictorSettings):
    """An intercept and one weight per feature; no settings beyond the target scale."""


class LeastSquaresPredictor(Predictor):
    """Ordinary least squares (minimum-norm where features are collinear): microseconds to fit.

    Latency is close to additive over layers, so on counts of what a network
    computes (ops per kind, MACs) this plain model is hard to beat with few examples.
    """

    name = "lstsq"
    description = "ordinary least squares with an intercept (the baseline)"
    settings_class = LinearSettings

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        design = _with_intercept(X)
        self._weights = np.linalg.lstsq(design, y, rcond=None)[0]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return _with_intercept(X) @ self._weights


class LeastAbsolutePredictor(Predictor):
    """Least absolute deviations (median regression, a linear programme): a few milliseconds to fit.

    Device latency tables have heavy tails (a cell timed at 3-10x its twins); a
    squared loss bends the whole fit towards them, an absolute loss ignores them.
    """

    name = "lad"
    description = "least absolute deviations with an intercept (robust to outliers)"
    settings_class = LinearSettings

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import QuantileRegressor

        # Standardised columns keep the programme well scaled; constant columns are dropped.
        self._scaling = Standardiser(X)
        self._model: Any = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs")
        self._model.fit(self._standardised(X), y)

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        Z = self._scaling(X)[:, self._scaling.varying]
        return Z if Z.shape[1] else np.zeros((len(X), 1))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._model.predict(self._standardised(X))


def _with_intercept(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


@hwnas.hookimpl
def hwnas_register_predictors(register: Any) -> None:
    register(LeastSquaresPredictor)
    register(LeastAbsolutePredictor)
