"""The ``ridge``, ``svr``, ``mlp`` and ``gbdt`` predictors: regressors behind the Predictor ABC.

Features are standardised; targets are standardised for the scale-sensitive
ones (SVR, MLP). Defaults favour cheap fits: a search refits them every round,
so ridge is closed-form numpy and the rest are scikit-learn.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import Predictor, PredictorSettings
from hwnas_plugins.predictors.feature_scaling import Standardiser


class _SklearnPredictor(Predictor):
    """A scikit-learn pipeline on standardised features, optionally on a standardised target."""

    standardise_target = False

    @abstractmethod
    def _model(self) -> Any:
        """A fresh, unfitted scikit-learn regressor."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self._mean, self._scale = (
            (float(y.mean()), float(y.std()) or 1.0) if self.standardise_target else (0.0, 1.0)
        )
        self._pipeline = make_pipeline(StandardScaler(), self._model())
        self._pipeline.fit(X, (y - self._mean) / self._scale)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._pipeline.predict(X) * self._scale + self._mean


@dataclass(frozen=True)
class RidgeSettings(PredictorSettings):
    """``alphas``: regularisation strengths tried, chosen by efficient leave-one-out (RidgeCV)."""

    alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


class RidgePredictor(Predictor):
    """Linear ridge regression on standardised features, the penalty chosen by closed-form
    leave-one-out error (what scikit-learn's RidgeCV computes), in numpy from one SVD: a
    search refits it every round, where scikit-learn's per-call overhead would dominate."""

    name = "ridge"
    description = "ridge regression, alpha by leave-one-out"
    settings_class = RidgeSettings

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._scaling = Standardiser(X)
        Z = self._scaling(X)
        self._offset = float(y.mean())
        centred = y - self._offset
        U, s, Vt = np.linalg.svd(Z, full_matrices=False)
        projected = U.T @ centred
        best = np.inf
        for alpha in self.settings.alphas:  # type: ignore[attr-defined]
            shrink = s**2 / (s**2 + alpha)
            # leverage of each example, the intercept's 1/n included
            leverage = (U**2) @ shrink + 1.0 / len(y)
            residual = (centred - U @ (shrink * projected)) / np.maximum(1.0 - leverage, 1e-12)
            error = float(np.mean(residual**2))
            if error < best:
                best, self.alpha = error, float(alpha)
                self._weights = Vt.T @ (s / (s**2 + alpha) * projected)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._scaling(X) @ self._weights + self._offset


@dataclass(frozen=True)
class SVRSettings(PredictorSettings):
    """RBF support-vector regression: ``C``, ``epsilon`` (on the standardised target), ``gamma``."""

    C: float = 10.0
    epsilon: float = 0.05
    gamma: str = "scale"


class SVRPredictor(_SklearnPredictor):
    name = "svr"
    description = "RBF support-vector regression"
    settings_class = SVRSettings
    standardise_target = True

    def _model(self) -> Any:
        from sklearn.svm import SVR

        s: SVRSettings = self.settings  # type: ignore[assignment]
        return SVR(C=s.C, epsilon=s.epsilon, gamma=s.gamma)


@dataclass(frozen=True)
class MLPSettings(PredictorSettings):
    """A small multilayer perceptron: ``hidden`` layer widths, L2 ``alpha``, ``max_iter``, ``seed``."""

    hidden: tuple[int, ...] = (64, 64)
    alpha: float = 1e-3
    max_iter: int = 1000
    seed: int = 0


class MLPPredictor(_SklearnPredictor):
    name = "mlp"
    description = "multilayer perceptron (scikit-learn, L-BFGS)"
    settings_class = MLPSettings
    standardise_target = True

    def _model(self) -> Any:
        from sklearn.neural_network import MLPRegressor

        s: MLPSettings = self.settings  # type: ignore[assignment]
        # L-BFGS converges on the few hundred samples a search has, where Adam wanders.
        return MLPRegressor(
            hidden_layer_sizes=s.hidden,
            alpha=s.alpha,
            solver="lbfgs",
            max_iter=s.max_iter,
            random_state=s.seed,
        )


@dataclass(frozen=True)
class GBDTSettings(PredictorSettings):
    """Gradient-boosted trees: ``n_estimators``, ``max_depth``, ``learning_rate``, row ``subsample``, ``seed``."""

    n_estimators: int = 200
    max_depth: int = 3
    learning_rate: float = 0.05
    subsample: float = 0.8
    seed: int = 0


class GBDTPredictor(_SklearnPredictor):
    name = "gbdt"
    description = "gradient-boosted decision trees (scikit-learn)"
    settings_class = GBDTSettings

    def _model(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        s: GBDTSettings = self.settings  # type: ignore[assignment]
        return GradientBoostingRegressor(
            n_estimators=s.n_estimators,
            max_depth=s.max_depth,
            learning_rate=s.learning_rate,
            subsample=s.subsample,
            random_state=s.seed,
        )


@hwnas.hookimpl
def hwnas_register_predictors(register: Any) -> None:
    for predictor in (RidgePredictor, SVRPredictor, MLPPredictor, GBDTPredictor):
        register(predictor)
