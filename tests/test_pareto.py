"""Pareto math: dominance, non-dominated sorting and hypervolume, against brute force and
Optuna's own hypervolume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from minsearch import pareto


def brute_ranks(values, directions):
    remaining = list(range(len(values)))
    ranks = [-1] * len(values)
    rank = 0
    while remaining:
        front = [i for i in remaining
                 if not any(pareto.dominates(values[j], values[i], directions)
                            for j in remaining if j != i)]
        for i in front:
            ranks[i] = rank
        remaining = [i for i in remaining if i not in front]
        rank += 1
    return ranks


def test_dominates_respects_directions():
    assert pareto.dominates([0.9, 10], [0.8, 12], ["max", "min"])
    assert not pareto.dominates([0.9, 12], [0.8, 10], ["max", "min"])  # a trade-off
    assert not pareto.dominates([0.9, 10], [0.9, 10], ["max", "min"])  # equal: not strictly
    assert pareto.dominates([0.9, 10], [0.9, 11], ["max", "min"])


@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_sort_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 5, size=(25, 3)).astype(float)  # many ties and duplicates
    directions = ["max", "min", "min"]
    assert pareto.non_dominated_sort(values, directions).tolist() == brute_ranks(
        values.tolist(), directions)


def test_pareto_mask_on_a_known_set():
    values = [[0.9, 100], [0.8, 50], [0.85, 120], [0.7, 40], [0.9, 100]]
    assert pareto.pareto_mask(values, ["max", "min"]).tolist() == [True, True, False, True, True]


def test_hypervolume_of_boxes_by_hand():
    # Minimise both; reference (4, 4): point (1, 3) covers 3x1, (3, 1) covers 1x3, overlap 1x1.
    assert pareto.hypervolume([[1, 3], [3, 1]], ["min", "min"], [4, 4]) == pytest.approx(5.0)
    # Max accuracy / min bytes, reference (0, 10): (0.5, 4) covers 0.5 x 6.
    assert pareto.hypervolume([[0.5, 4]], ["max", "min"], [0.0, 10]) == pytest.approx(3.0)


def test_points_beyond_the_reference_add_nothing():
    assert pareto.hypervolume([[5, 1]], ["min", "min"], [4, 4]) == 0.0
    assert pareto.hypervolume(np.zeros((0, 2)), ["min", "min"], [4, 4]) == 0.0


@pytest.mark.parametrize("dims", [2, 3, 4, 5])
def test_hypervolume_matches_optuna(dims):
    rng = np.random.default_rng(dims)
    points = rng.random((30, dims))
    ref = np.full(dims, 1.2)
    assert pareto.hypervolume(points, ["min"] * dims, ref) == pytest.approx(
        compute_hypervolume(points, ref), rel=1e-9)


def test_hypervolume_is_monotone_in_the_front():
    rng = np.random.default_rng(7)
    points = rng.random((20, 3))
    ref = [1.1, 1.1, 1.1]
    volumes = [pareto.hypervolume(points[:k], ["min"] * 3, ref) for k in range(1, 21)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(volumes))


def test_maximised_columns_are_negated_consistently():
    points = np.array([[0.9, 3.0], [0.6, 1.0]])
    as_max = pareto.hypervolume(points, ["max", "min"], [0.0, 4.0])
    flipped = pareto.hypervolume(np.c_[-points[:, 0], points[:, 1]], ["min", "min"], [0.0, 4.0])
    assert as_max == pytest.approx(flipped)


@pytest.mark.parametrize("values, directions, message", [
    ([[1.0, float("nan")]], ["max", "min"], "finite"),
    ([[1.0, 2.0]], ["max"], "one column per direction"),
    ([[1.0, 2.0]], ["max", "up"], "'max' or 'min'"),
])
def test_bad_input_is_a_clear_error(values, directions, message):
    with pytest.raises(ValueError, match=message):
        pareto.non_dominated_sort(values, directions)


def test_pareto_module_stays_pure():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(pareto))
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.Import)} | {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"ray", "optuna", "mlflow", "torch"}


def test_seed_resamples_enumerate_every_draw_for_few_seeds():
    from minsearch.pareto import seed_resamples

    draws = seed_resamples(3)
    assert draws.shape == (27, 3) and len({tuple(d) for d in draws}) == 27
    assert seed_resamples(6, limit=50).shape == (50, 6)  # 6**6 draws: sampled instead


def test_front_stability_counts_resamples_where_a_point_stays_non_dominated():
    from minsearch.pareto import front_stability

    # (n_seeds=2, n_points=3, 2 objectives): point 2 wins on seed 1 only.
    samples = np.array([[[0.9, 10], [0.8, 5], [0.85, 12]],
                        [[0.92, 10], [0.86, 5], [0.95, 12]]])
    shares = front_stability(samples, ["max", "min"])
    np.testing.assert_allclose(shares, [1.0, 1.0, 0.25])
    with pytest.raises(ValueError, match="n_seeds, n_points, n_objectives"):
        front_stability(samples[0], ["max", "min"])


def test_dominated_by_compares_points_with_another_set():
    from minsearch.pareto import dominated_by

    mask = dominated_by([[0.8, 12], [0.95, 12], [0.9, 10]], [[0.9, 10]], ["max", "min"])
    assert mask.tolist() == [True, False, False]  # equal is not dominated
    assert dominated_by([[0.8, 12]], np.zeros((0, 2)), ["max", "min"]).tolist() == [False]
def test_hypervolume_contributions():
    # By hand, reference (0, 2): A (1.0, 1.0) alone holds (0.9, 1] x [1, 2) = 0.1; B (0.9,
    # 0.5) alone holds [0, 0.9] x [0.5, 1) = 0.45 less what C (0.8, 0.6), which B dominates,
    # covers of it: [0, 0.8] x [0.6, 1) = 0.32. A duplicate of B: neither adds anything.
    values = [[1.0, 1.0], [0.9, 0.5], [0.8, 0.6]]
    np.testing.assert_allclose(pareto.hypervolume_contributions(values, ["max", "min"], [0, 2]),
                               [0.1, 0.13, 0.0], atol=1e-12)
    twice = pareto.hypervolume_contributions(values + [[0.9, 0.5]], ["max", "min"], [0, 2])
    np.testing.assert_allclose(twice, [0.1, 0.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_contributions_are_leave_one_out_differences(dims):
    rng = np.random.default_rng(dims)
    points = np.round(rng.random((15, dims)), 1)  # rounded: ties and duplicates happen
    directions, ref = ["min"] * dims, [1.05] * dims
    total = pareto.hypervolume(points, directions, ref)
    expected = [total - pareto.hypervolume(np.delete(points, i, axis=0), directions, ref)
                for i in range(len(points))]
    np.testing.assert_allclose(pareto.hypervolume_contributions(points, directions, ref),
                               expected, atol=1e-12)
