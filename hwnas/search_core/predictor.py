"""The :class:`Predictor` base class every objective predictor plugin subclasses, and its quality report.

Predictors map features of an architecture to one metric (latency, accuracy,
...). Which features, and which predictor a search uses, is the strategy's choice.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from hwnas.errors import ConfigError, HwnasError

TARGETS = ("auto", "raw", "log")


@dataclass(frozen=True)
class PredictorSettings:
    """Base of every predictor's settings; subclasses add typed fields, each with a default.

    ``target`` is the scale the model is fitted on: ``raw`` (y itself),
    ``log`` (log y, predicting exp(.): errors become relative), or ``auto``,
    which picks the one with the smaller held-out median relative error in a
    ``target_folds``-fold cross-validation on the training set (``raw`` when a
    target is not positive, or on a tie). Latency is close to additive over
    layers, so a fixed log scale can hurt as much as it helps; measure, don't assume.
    """

    target: str = "auto"
    target_folds: int = 5


@dataclass(frozen=True)
class PredictionQuality:
    """How well a fitted predictor ranks and estimates held-out values.

    ``kendall_tau``: rank agreement in [-1, 1]; ``mape``: mean absolute
    percentage error (a fraction, 0.05 = 5 %); ``within_10pct``: share of
    predictions within ±10 % of the truth.
    """

    n: int
    kendall_tau: float
    mape: float
    within_10pct: float

    def __str__(self) -> str:
        return (
            f"n={self.n} kendall_tau={self.kendall_tau:.3f} mape={100 * self.mape:.1f}% "
            f"within±10%={100 * self.within_10pct:.1f}%"
        )


def prediction_quality(predicted: np.ndarray, actual: np.ndarray) -> PredictionQuality:
    """Compare predictions with the truth (both 1-D, same length, truth non-zero for the relative figures)."""
    from scipy.stats import kendalltau

    predicted = np.asarray(predicted, dtype=float).ravel()
    actual = np.asarray(actual, dtype=float).ravel()
    if predicted.shape != actual.shape or actual.size < 2:
        raise ConfigError(
            f"quality needs two equal-length series of at least 2 values, got {predicted.size} and {actual.size}"
        )
    nonzero = actual != 0
    relative = np.abs(predicted[nonzero] - actual[nonzero]) / np.abs(actual[nonzero])
    tau = kendalltau(predicted, actual).statistic
    return PredictionQuality(
        n=int(actual.size),
        kendall_tau=float(tau) if np.isfinite(tau) else 0.0,
        mape=float(relative.mean()) if relative.size else float("nan"),
        within_10pct=float(np.mean(relative <= 0.10)) if relative.size else float("nan"),
    )


@functools.lru_cache(maxsize=1)
def _thread_controller() -> Any:
    # The controller only sees the thread pools of libraries loaded when it is built; scipy
    # and scikit-learn bring their own BLAS and OpenMP, so load them first, or every fit
    # after the first would run on all cores.
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded() -> Any:
    """Predictor matrices are tiny: threaded BLAS/OpenMP only adds synchronisation, and on a
    busy machine its spinning threads make a 0.3 s MLP fit take 10 s. Fits run on one thread."""
    return _thread_controller().limit(limits=1)


class Predictor(ABC):
    """Learns one metric from examples: :meth:`fit`, :meth:`predict`, and a held-out :meth:`quality` report.

    ``input_kind`` says what ``X`` is: ``"vector"`` (a feature matrix, e.g.
    :meth:`SearchSpace.features_matrix`) or ``"kernels"`` (per architecture, a
    list of kernel keys from the graph IR). Subclasses set ``name`` and
    ``settings_class`` and implement :meth:`_fit` and :meth:`_predict`, which
    see the target on the scale chosen (``self.target``); the base class checks inputs
    and chooses that scale.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    settings_class: ClassVar[type[PredictorSettings]] = PredictorSettings
    input_kind: ClassVar[Literal["vector", "kernels"]] = "vector"

    def __init__(self, settings: PredictorSettings | None = None) -> None:
        if settings is None:
            settings = self.settings_class()
        elif type(settings) is not self.settings_class:
            raise ConfigError(
                f"predictor {self.name!r} takes {self.settings_class.__name__}, not {type(settings).__name__}"
            )
        if settings.target not in TARGETS:
            raise ConfigError(
                f"predictor {self.name!r}: unknown target {settings.target!r}",
                hint=f"choose one of {', '.join(TARGETS)}",
            )
        self.settings = settings
        self.fitted = False
        self.target = "raw"  # the scale chosen at fit time

    @classmethod
    def with_target(cls, target: str, **fields: Any) -> Predictor:
        """An instance with default settings except ``target`` (and any ``fields`` given)."""
        return cls(dataclasses.replace(cls.settings_class(), target=target, **fields))

    def fresh(self, **fields: Any) -> Predictor:
        """An unfitted copy with the same settings (except ``fields``); subclasses holding
        more than settings (a kernel table, a measurer) override it to pass that on."""
        return type(self)(dataclasses.replace(self.settings, **fields))

    def fit(self, X: Any, y: Sequence[float] | np.ndarray) -> Predictor:
        """Fit on examples ``X`` (see ``input_kind``) and targets ``y``; returns ``self``."""
        y = np.asarray(y, dtype=float).ravel()
        X = self._checked(X)
        if len(X) != len(y):
            raise ConfigError(f"{self.name}: {len(X)} examples but {len(y)} targets")
        if len(y) < 2:
            raise ConfigError(f"{self.name}: need at least 2 examples to fit, got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ConfigError(f"{self.name}: targets contain NaN or infinity")
        target = self.settings.target
        if target == "log" and np.any(y <= 0):
            raise ConfigError(
                f"{self.name}: target='log' needs positive targets; smallest is {y.min()}",
                hint="use target='raw' or 'auto'",
            )
        if target == "auto":
            target = self._held_out_target(X, y)
        self.target = target
        with single_threaded():
            self._fit(X, np.log(y) if target == "log" else y)
        self.fitted = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted metric values, one per example."""
        if not self.fitted:
            raise HwnasError(f"predictor {self.name!r} is not fitted", hint="call fit(X, y) first")
        X = self._checked(X)
        if len(X) == 0:
            return np.zeros(0)
        with single_threaded():
            predicted = np.asarray(self._predict(X), dtype=float).ravel()
        return np.exp(np.clip(predicted, -700, 700)) if self.target == "log" else predicted

    def quality(self, X_test: Any, y_test: Sequence[float] | np.ndarray) -> PredictionQuality:
        """Held-out quality: Kendall tau, MAPE and share within ±10 %."""
        return prediction_quality(self.predict(X_test), np.asarray(y_test, dtype=float))

    def _held_out_target(self, X: Any, y: np.ndarray) -> str:
        """``raw`` or ``log``: the one whose cross-validated predictions have the smaller median relative error."""
        folds = min(self.settings.target_folds, len(y) // 2)
        if folds < 2 or np.any(y <= 0):
            return "raw"
        assignment = np.random.default_rng(0).permutation(len(y)) % folds
        errors = {}
        for target in ("raw", "log"):
            predicted = np.empty(len(y))
            for fold in range(folds):
                train, test = assignment != fold, assignment == fold
                model = self.fresh(target=target).fit(_rows(X, train), y[train])
                predicted[test] = model.predict(_rows(X, test))
            errors[target] = float(np.median(np.abs(predicted - y) / np.abs(y)))
        return "log" if errors["log"] < errors["raw"] else "raw"

    def _checked(self, X: Any) -> Any:
        if self.input_kind == "kernels":
            rows = list(X)
            if any(isinstance(r, str) for r in rows):
                raise ConfigError(
                    f"{self.name}: each example must be a list of kernel keys, not a string"
                )
            return [list(r) for r in rows]
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ConfigError(f"{self.name}: X must be a 2-D feature matrix, got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ConfigError(f"{self.name}: features contain NaN or infinity")
        return X

    @abstractmethod
    def _fit(self, X: Any, y: np.ndarray) -> None:
        """Fit on checked ``X`` and the target on the scale chosen (``self.target``: raw or log)."""

    @abstractmethod
    def _predict(self, X: Any) -> np.ndarray:
        """Predict the target on the scale it was fitted on."""


def _rows(X: Any, mask: np.ndarray) -> Any:
    """The examples selected by a boolean ``mask``: rows of a matrix, or items of a list."""
    if isinstance(X, np.ndarray):
        return X[mask]
    return [x for x, keep in zip(X, mask, strict=True) if keep]
