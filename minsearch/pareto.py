"""Pareto math over plain arrays: dominance, non-dominated sorting, hypervolume, and how
stable a front is under a seed bootstrap.

Pure functions over ``(n_points, n_objectives)`` arrays and a direction per objective
(``"max"`` or ``"min"``). Nothing here knows about Ray, Optuna or MLflow. Internally every
objective is turned into one to minimise (maximised columns are negated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIRECTIONS = ("max", "min")


def _check(values: np.ndarray | Sequence, directions: Sequence[str]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(directions))
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(f"Values must be an (n_points, n_objectives) array with one column "
                         f"per direction, but got shape {array.shape} for {len(directions)} "
                         f"directions.")
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"Directions must be 'max' or 'min', but got {bad}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("Pareto math needs finite values; drop failed trials (NaN/inf) first.")
    return array


def as_minimization(values: np.ndarray | Sequence, directions: Sequence[str]) -> np.ndarray:
    """Negate the maximised columns so that smaller is better everywhere."""
    array = _check(values, directions)
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return array * signs


def worsening(value: float, baseline: float, direction: str) -> float:
    """How much worse ``value`` is than ``baseline``: the drop of a maximised objective (an
    accuracy drop), the rise of a minimised one (a loss increase); negative when better."""
    if direction not in DIRECTIONS:
        raise ValueError(f"Direction must be 'max' or 'min', but got {direction!r}.")
    return baseline - value if direction == "max" else value - baseline


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and strictly better somewhere."""
    pair = as_minimization([a, b], directions)
    return bool(np.all(pair[0] <= pair[1]) and np.any(pair[0] < pair[1]))


def non_dominated_sort(values: np.ndarray | Sequence, directions: Sequence[str]) -> np.ndarray:
    """Pareto rank of each point: 0 for the front, 1 for the front once 0 is removed, ...

    Duplicated points share a rank. O(n^2 m) per front, fine for the hundreds of trials a
    search produces.
    """
    points = as_minimization(values, directions)
    n = len(points)
    ranks = np.full(n, -1, dtype=int)
    remaining = np.arange(n)
    rank = 0
    while remaining.size:
        sub = points[remaining]
        # dominated[i] is True when some other remaining point dominates point i.
        le = np.all(sub[:, None, :] <= sub[None, :, :], axis=2)  # le[j, i]: j <= i everywhere
        lt = np.any(sub[:, None, :] < sub[None, :, :], axis=2)
        dominated = np.any(le & lt, axis=0)
        ranks[remaining[~dominated]] = rank
        remaining = remaining[dominated]
        rank += 1
    return ranks


def pareto_mask(values: np.ndarray | Sequence, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated points."""
    return non_dominated_sort(values, directions) == 0


def hypervolume(values: np.ndarray | Sequence, directions: Sequence[str],
                reference: Sequence[float]) -> float:
    """Volume of objective space dominated by ``values`` and bounded by ``reference``.

    ``reference`` is given in the objectives' own directions (e.g. accuracy 0 for a maximised
    accuracy, twice the baseline's bytes for minimised bytes). Points that do not strictly
    beat the reference in every objective add nothing. Exact, by slicing along one objective
    at a time (fine for a few objectives and hundreds of points).
    """
    ref = as_minimization([list(reference)], directions)[0]
    points = as_minimization(values, directions)
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_mask(points, ["min"] * points.shape[1])]
    return float(_hv_min(np.unique(points, axis=0), ref))


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume for minimisation; every point is strictly below ``ref``."""
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    points = points[np.argsort(points[:, 0], kind="stable")]
    # Slab i spans [x_i, x_{i+1}) along the first objective; it is dominated by exactly the
    # points whose first coordinate is <= x_i, i.e. points[: i + 1].
    widths = np.diff(np.append(points[:, 0], ref[0]))
    if points.shape[1] == 2:
        best = np.minimum.accumulate(points[:, 1])
        return float(np.sum(widths * (ref[1] - best)))
    volume = 0.0
    for i in np.nonzero(widths > 0)[0]:
        head = points[: i + 1, 1:]
        head = head[pareto_mask(head, ["min"] * head.shape[1])]
        volume += widths[i] * _hv_min(head, ref[1:])
    return volume


def dominated_by(points: np.ndarray | Sequence, others: np.ndarray | Sequence,
                 directions: Sequence[str]) -> np.ndarray:
    """Boolean mask over ``points``: True where some point of ``others`` dominates it."""
    a = as_minimization(points, directions)
    b = as_minimization(others, directions)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    le = np.all(b[:, None, :] <= a[None, :, :], axis=2)  # le[j, i]: other j <= point i
    lt = np.any(b[:, None, :] < a[None, :, :], axis=2)
    return np.any(le & lt, axis=0)


EXACT_RESAMPLES = 3125  # n**n ordered resamples of n seeds are enumerated up to n = 5


def seed_resamples(n_seeds: int, limit: int = 2000, seed: int = 0) -> np.ndarray:
    """``(resamples, n_seeds)`` seed indices drawn with replacement: every one of the
    ``n_seeds ** n_seeds`` equally likely draws when there are at most
    :data:`EXACT_RESAMPLES` (an exact bootstrap), else ``limit`` random ones."""
    if n_seeds ** n_seeds <= EXACT_RESAMPLES:
        grids = np.meshgrid(*[np.arange(n_seeds)] * n_seeds, indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1)
    return np.random.default_rng(seed).integers(0, n_seeds, size=(limit, n_seeds))


def front_stability(samples: np.ndarray | Sequence, directions: Sequence[str]) -> np.ndarray:
    """How sure each point's place on the front is: the share of seed-bootstrap resamples in
    which it is non-dominated.

    ``samples`` is ``(n_seeds, n_points, n_objectives)``: every point measured on the same
    seeds (a deterministic objective repeats its value). Each resample draws seeds with
    replacement, the same draw for every point (the measurements are paired by seed), and
    takes each point's mean over the drawn seeds; the non-dominated set of those means is
    compared with each point. 1.0: non-dominated whichever seeds are drawn; with one seed the
    answer is 1.0 for the front by construction, so callers say "not measured" instead.
    """
    array = np.asarray(samples, dtype=float)
    if array.ndim != 3 or array.shape[2] != len(directions):
        raise ValueError(f"Samples must be (n_seeds, n_points, n_objectives) with one column per "
                         f"direction, but got shape {array.shape} for {len(directions)}.")
    n_seeds, n_points, _ = array.shape
    if n_points == 0:
        return np.zeros(0)
    _check(array.reshape(-1, len(directions)), directions)  # finite, known directions
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    draws = seed_resamples(n_seeds)
    means = array[draws].mean(axis=1) * signs  # (resamples, n_points, n_objectives), minimised
    le = np.all(means[:, :, None, :] <= means[:, None, :, :], axis=3)  # [r, j, i]: j <= i
    lt = np.any(means[:, :, None, :] < means[:, None, :, :], axis=3)
    dominated = np.any(le & lt, axis=1)  # (resamples, n_points)
    return 1.0 - dominated.mean(axis=0)


def hypervolume_contributions(values: np.ndarray | Sequence, directions: Sequence[str],
                              reference: Sequence[float]) -> np.ndarray:
    """Each point's exclusive hypervolume: ``hypervolume(all) - hypervolume(all but it)``.

    0 for a dominated point, for a point that does not beat ``reference`` everywhere, and for
    each of two identical points (neither adds anything the other does not). Computed as in
    WFG (While et al., 2012): the box between a point and the reference, less the hypervolume
    of the other points clipped to that box (each ``max(other, point)`` in minimisation form),
    which is small once dominated clips are dropped."""
    ref = as_minimization([list(reference)], directions)[0]
    points = as_minimization(values, directions)
    contributions = np.zeros(len(points))
    for i, point in enumerate(points):
        if not np.all(point < ref):
            continue
        clipped = np.maximum(np.delete(points, i, axis=0), point)
        clipped = clipped[np.all(clipped < ref, axis=1)]
        covered = 0.0
        if len(clipped):
            clipped = np.unique(clipped, axis=0)
            covered = _hv_min(clipped[pareto_mask(clipped, ["min"] * len(ref))], ref)
        contributions[i] = max(float(np.prod(ref - point)) - covered, 0.0)
    return contributions
