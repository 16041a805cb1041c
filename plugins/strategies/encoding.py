"""Vectorised work on batches of integer-encoded subnets: canonical form, activity, predictor features.

Canonical rows agree with :meth:`SearchSpace.decode`/``encode`` but the work is
on whole matrices, which is what keeps inner searches on predictors cheap.
"""

from __future__ import annotations

import itertools

import numpy as np

from hwnas import SearchSpace


class EncodingTools:
    """Per-space lookup arrays, built once, for canonicalising and featurising encoded batches."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.upper = space.upper_bounds
        names = space.names
        # gene column -> (parent column, allowed parent choice indices) for conditional genes
        self._conditions: list[tuple[int, int, np.ndarray]] = []
        for i, gene in enumerate(space.genes):
            if gene.active_if is not None:
                parent, values = gene.active_if
                p = names.index(parent)
                allowed = np.array([space.genes[p].index(v) for v in values], dtype=int)
                self._conditions.append((i, p, allowed))
        # genes sharing one tuple of choices (an op per edge, a kernel size per layer): counting
        # each choice over them gives the features a cost is additive in
        groups: dict[tuple, list[int]] = {}
        for i, gene in enumerate(space.genes):
            groups.setdefault(gene.choices, []).append(i)
        self._shared = [
            (np.array(cols), len(choices)) for choices, cols in groups.items() if len(cols) > 1
        ]
        self._numeric = [
            (i, np.array(g.choices, dtype=float)) for i, g in enumerate(space.genes) if g.numeric
        ]

    def active(self, X: np.ndarray) -> np.ndarray:
        """Boolean matrix: which genes of each row are active."""
        X = np.atleast_2d(X)
        mask = np.ones(X.shape, dtype=bool)
        for i, p, allowed in self._conditions:
            mask[:, i] = np.isin(X[:, p], allowed)
        return mask

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Round and clip into range and zero inactive genes: the encoding of ``decode(row)``."""
        X = np.clip(np.rint(np.atleast_2d(np.asarray(X, dtype=float))), 0, self.upper).astype(int)
        X[~self.active(X)] = 0
        return X

    def features(self, X: np.ndarray) -> np.ndarray:
        """Predictor features of canonical rows: every gene one-hot (numbers are not always ordinal:
        a kernel-type index is not), numeric genes also by value scaled to [0, 1], and for genes
        sharing their choices the count of each choice among them. Inactive genes give zeros."""
        X = np.atleast_2d(X)
        active = self.active(X)
        columns: list[np.ndarray] = []
        for i, gene in enumerate(self.space.genes):
            onehot = np.zeros((len(X), len(gene.choices)))
            onehot[np.arange(len(X)), X[:, i]] = 1.0
            columns.append(onehot * active[:, i : i + 1])
        for i, values in self._numeric:
            span = values.max() - values.min()
            scaled = (values[X[:, i]] - values.min()) / span if span > 0 else np.zeros(len(X))
            columns.append((scaled * active[:, i])[:, None])
        for cols, n in self._shared:
            counts = np.zeros((len(X), n))
            for c in cols:
                np.add.at(counts, (np.arange(len(X)), X[:, c]), active[:, c].astype(float))
            columns.append(counts)
        return np.hstack(columns) if columns else np.zeros((len(X), 0))

    def enumerate(self, limit: int) -> np.ndarray | None:
        """Every canonical encoding of the space, or ``None`` if the raw grid has more than ``limit`` rows."""
        if int(np.prod(self.upper + 1, dtype=float)) > limit:
            return None
        grid = np.array(list(itertools.product(*[range(u + 1) for u in self.upper])), dtype=int)
        return np.unique(self.canonical(grid), axis=0)


def row_key(row: np.ndarray) -> bytes:
    """Hashable identity of a canonical row (canonical rows and subnets correspond one to one)."""
    return np.asarray(row, dtype=np.int64).tobytes()
