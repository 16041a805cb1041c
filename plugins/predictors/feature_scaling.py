"""Standardising feature columns (zero mean, unit variance) for the linear predictors, constant columns kept apart.

scikit-learn's StandardScaler does the same per call with more overhead; a
search refits its predictors every round on a few hundred rows.
"""

from __future__ import annotations

import numpy as np


class Standardiser:
    """Column means and scales learnt on training rows; constant columns get scale 1 (and map to 0)."""

    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        scale = X.std(axis=0)
        self.varying = scale > 0
        self.scale = np.where(self.varying, scale, 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale
