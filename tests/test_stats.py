"""Intervals on synthetic data with known means: they contain the truth at the stated rate (a
binomial tolerance a wrong multiplier fails), pair by seed, and feasibility says *uncertain*
when the data cannot decide."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minsearch.stats import (
    UNBOUNDED,
    Interval,
    bootstrap_interval,
    feasibility,
    mean_interval,
    paired_interval,
)

DRAWS = 3000


def _tolerance(rate: float, draws: int = DRAWS) -> float:
    """Four binomial standard deviations of an observed rate."""
    return 4 * math.sqrt(rate * (1 - rate) / draws)


@pytest.mark.parametrize("n, confidence", [(2, 0.9), (3, 0.9), (3, 0.95), (8, 0.8)])
def test_t_interval_contains_the_true_mean_at_the_stated_rate(n, confidence):
    rng = np.random.default_rng(n * 100 + int(confidence * 100))
    truth = 0.9
    samples = rng.normal(truth, 0.02, size=(DRAWS, n))
    covered = np.mean([mean_interval(s, confidence).contains(truth) for s in samples])
    assert abs(covered - confidence) <= _tolerance(confidence), covered
    # The tolerance has power: a normal (z) multiplier in place of Student's t misses it for
    # small n (n=3, 0.9: about 0.76 of the draws covered).
    if n <= 3:
        from scipy.stats import norm

        z = norm.ppf(0.5 + confidence / 2)
        half = z * samples.std(axis=1, ddof=1) / math.sqrt(n)
        z_covered = np.mean(np.abs(samples.mean(axis=1) - truth) <= half)
        assert confidence - z_covered > _tolerance(confidence), z_covered


def test_paired_interval_covers_the_true_difference_and_is_narrower_than_unpaired():
    """Seed effects shared by candidate and baseline (sd 3 points) cancel in the pairing; the
    interval of the difference holds the true difference (-1 point) at the stated rate."""
    rng = np.random.default_rng(7)
    n, confidence, delta = 3, 0.9, -0.01
    seed_effect = rng.normal(0, 0.03, size=(DRAWS, n))
    baseline = 0.9 + seed_effect + rng.normal(0, 0.004, size=(DRAWS, n))
    candidate = 0.9 + delta + seed_effect + rng.normal(0, 0.004, size=(DRAWS, n))
    intervals = [paired_interval(c, b, confidence) for c, b in zip(candidate, baseline,
                                                                   strict=True)]
    covered = np.mean([i.contains(delta) for i in intervals])
    assert abs(covered - confidence) <= _tolerance(confidence), covered
    assert intervals[0].method == "paired t" and intervals[0].n == n
    paired = np.median([i.half_width for i in intervals])
    unpaired = np.median([math.hypot(mean_interval(c, confidence).half_width,
                                     mean_interval(b, confidence).half_width)
                          for c, b in zip(candidate[:200], baseline[:200], strict=True)])
    assert paired < unpaired / 3, (paired, unpaired)


def test_paired_interval_pairs_mappings_by_seed():
    by_seed = paired_interval({1: 0.8, 0: 0.7, 2: 0.9}, {2: 0.85, 0: 0.72, 1: 0.78})
    assert by_seed.mean == pytest.approx(np.mean([0.7 - 0.72, 0.8 - 0.78, 0.9 - 0.85]))
    with pytest.raises(ValueError, match=r"same seeds.*\[0, 1\].*\[0, 2\]"):
        paired_interval({0: 0.8, 1: 0.7}, {0: 0.8, 2: 0.7})
    with pytest.raises(ValueError, match="one baseline value per candidate value"):
        paired_interval([0.8, 0.7], [0.8])


def test_one_value_gives_an_unbounded_interval_that_says_so():
    single = mean_interval([0.93], 0.9)
    assert single.mean == 0.93 and single.n == 1 and not single.bounded
    assert single.lo == -math.inf and single.hi == math.inf and math.isnan(single.sd)
    assert single.method == UNBOUNDED
    assert feasibility(single, 0.02) == "uncertain"
    assert single.to_json()["lo"] is None and single.to_json()["sd"] is None  # JSON-safe
    back = Interval.from_json(single.to_json())
    assert (back.lo, back.hi, back.method) == (-math.inf, math.inf, UNBOUNDED)
    bounded = mean_interval([0.9, 0.92, 0.95])
    assert Interval.from_json(bounded.to_json()) == bounded


def test_identical_values_give_a_zero_width_interval():
    same = mean_interval([5.0, 5.0, 5.0])
    assert same.lo == same.hi == same.mean == 5.0 and same.sd == 0.0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"`confidence` must be in \(0, 1\).*1.5"):
        mean_interval([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="at least one value"):
        mean_interval([])
    with pytest.raises(ValueError, match="finite values"):
        mean_interval([1.0, math.nan])


def test_feasibility_verdicts_at_the_edges():
    def interval(lo: float, hi: float) -> Interval:
        return Interval((lo + hi) / 2, lo, hi, 0.01, 3, 0.9, "t")

    assert feasibility(interval(-0.01, 0.02), 0.02) == "feasible"  # hi exactly at the limit
    assert feasibility(interval(0.021, 0.05), 0.02) == "infeasible"
    assert feasibility(interval(0.0, 0.03), 0.02) == "uncertain"


def test_feasibility_is_uncertain_when_the_truth_sits_at_the_limit():
    """A candidate whose true worsening equals the limit is called feasible, or infeasible,
    in at most (1 - c) / 2 of the draws each: mostly uncertain with 3 seeds."""
    rng = np.random.default_rng(3)
    confidence, limit = 0.9, 0.02
    worsening = rng.normal(limit, 0.015, size=(DRAWS, 3))
    verdicts = [feasibility(mean_interval(w, confidence), limit) for w in worsening]
    error = (1 - confidence) / 2
    for verdict in ("feasible", "infeasible"):
        rate = verdicts.count(verdict) / DRAWS
        assert rate <= error + _tolerance(error), (verdict, rate)
    assert verdicts.count("uncertain") / DRAWS >= confidence - _tolerance(confidence)


def test_feasibility_decides_when_the_evidence_is_clear():
    rng = np.random.default_rng(4)
    clear = [feasibility(mean_interval(rng.normal(-0.01, 0.005, 5), 0.9), 0.02)
             for _ in range(200)]
    assert clear.count("feasible") == 200
    bad = [feasibility(mean_interval(rng.normal(0.10, 0.005, 5), 0.9), 0.02)
           for _ in range(200)]
    assert bad.count("infeasible") == 200


def test_bootstrap_covers_well_with_many_values_and_too_little_with_three():
    rng = np.random.default_rng(11)
    confidence, draws = 0.9, 600
    many = rng.normal(0.0, 1.0, size=(draws, 30))
    covered = np.mean([bootstrap_interval(s, confidence, resamples=400, seed=i).contains(0.0)
                       for i, s in enumerate(many)])
    assert abs(covered - confidence) <= _tolerance(confidence, draws) + 0.02, covered
    few = rng.normal(0.0, 1.0, size=(draws, 3))
    covered_few = np.mean([bootstrap_interval(s, confidence, resamples=400, seed=i)
                           .contains(0.0) for i, s in enumerate(few)])
    assert covered_few < confidence - 0.1, covered_few  # as the module docstring warns
