"""Choosing a batch from predicted objectives: greedy hypervolume gain in a box that does not clip predictions, kept diverse.

Used by LINAS for every batch, including a first batch chosen on the front
that free statistics predict.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from hwnas import Objective, constrained_ranks, crowding_distance, hypervolume, normalisation_bounds

# margin beyond the measured nadir when no bounds are declared, so points on the edge still gain
REFERENCE_MARGIN = 0.1


def gain_box(
    objectives: Sequence[Objective], front: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) to normalise hypervolume gains with, on the minimisation scale.

    The lower corner takes in every prediction, so a candidate predicted beyond the
    best measured value keeps the gain it is predicted to bring (clipping it to the
    measured box would erase exactly the extensions of the front worth measuring).
    The upper corner is the declared bound, else the measured nadir plus a margin.
    """
    reference = front if len(front) else predicted
    lower, upper = normalisation_bounds(objectives, reference)
    if len(predicted):
        lower = np.minimum(lower, predicted.min(axis=0))
    declared = np.array([o.bounds is not None for o in objectives])
    upper = np.where(declared, upper, upper + REFERENCE_MARGIN * (upper - lower))
    return lower, np.where(upper > lower, upper, lower + 1.0)


def rank_order(F: np.ndarray, violation: np.ndarray, sorted_first: int | None = None) -> list[int]:
    """Indices by constrained non-dominated rank, then by crowding (most isolated first) within a rank.

    Only the ranks holding the first ``sorted_first`` indices are ordered by crowding; the rest
    follow by rank alone (the batch is chosen among the first, and crowding costs one sort per rank).
    """
    ranks = constrained_ranks(F, violation)
    by_rank = np.argsort(ranks, kind="stable")
    limit = len(F) if sorted_first is None else min(sorted_first, len(F))
    order: list[int] = []
    for rank in np.unique(ranks):
        if len(order) >= limit:
            break
        members = np.flatnonzero(ranks == rank)
        crowding = crowding_distance(F[members])
        order.extend(members[np.argsort(-crowding, kind="stable")].tolist())
    done = len(order)
    return order + by_rank[done:].tolist()


def diverse_greedy_gain(
    F: np.ndarray,
    shortlist: Sequence[int],
    n: int,
    front: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
    genes: np.ndarray,
    min_distance: int,
    earlier: Sequence[int] = (),
) -> list[int]:
    """Up to ``n`` of ``shortlist`` by greedy hypervolume gain over ``front``, none closer than
    ``min_distance`` differing genes to a pick before it (or to the rows ``earlier`` of ``genes``:
    picks made for this batch already).

    Gains only shrink as picks are added (hypervolume is submodular), so a stale
    gain bounds the fresh one and most need no recomputing. The distance rule keeps
    one batch from spending itself on near-copies of one predicted optimum: where a
    prediction is wrong, it is wrong for the whole neighbourhood.
    """
    lower, upper = box
    current = hypervolume(front, lower, upper) if len(front) else 0.0

    def gain(i: int) -> float:
        return hypervolume(np.vstack([front, F[i : i + 1]]), lower, upper) - current

    heap = [(-gain(i), i) for i in shortlist]
    heapq.heapify(heap)
    chosen: list[int] = []
    while heap and len(chosen) < n:
        _, i = heapq.heappop(heap)
        if _too_close(genes, [*earlier, *chosen], i, min_distance):
            continue
        fresh = gain(i)
        if fresh <= 1e-12:
            continue
        if heap and fresh < -heap[0][0]:
            heapq.heappush(heap, (-fresh, i))
            continue
        chosen.append(i)
        front = np.vstack([front, F[i : i + 1]])
        current += fresh
    return chosen


def fill_diverse(
    order: Sequence[int],
    chosen: list[int],
    n: int,
    genes: np.ndarray,
    min_distance: int,
    earlier: Sequence[int] = (),
) -> list[int]:
    """Top up ``chosen`` to ``n`` from ``order``: first keeping the distance rule, then without it."""
    chosen = list(chosen)
    taken = set(chosen)
    for keep_distance in (True, False):
        for i in order:
            if len(chosen) >= n:
                return chosen
            if i in taken:
                continue
            if keep_distance and _too_close(genes, [*earlier, *chosen], i, min_distance):
                continue
            chosen.append(i)
            taken.add(i)
    return chosen


def _too_close(genes: np.ndarray, picks: Sequence[int], i: int, min_distance: int) -> bool:
    if not picks or min_distance <= 0:
        return False
    return int((genes[list(picks)] != genes[i]).sum(axis=1).min()) < min_distance
