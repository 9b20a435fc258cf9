"""Confidence intervals for repeated measurements: a mean over seeds, a paired difference, and
the three-way feasibility verdict built on them.

Pure functions over plain sequences (numpy; Student-t quantiles from scipy, which
scikit-learn already brings). Nothing here knows about trials, Ray or Optuna.

- :func:`mean_interval`: the Student-t interval of a mean, ``mean ± t(1 - α/2, n - 1) · sd /
  sqrt(n)`` with ``α = 1 - confidence``. It assumes roughly normal values (a seed's accuracy
  is), and its coverage is exact for normal values at any ``n >= 2``. With one value there is
  no spread to estimate: the interval is unbounded (``lo = -inf``, ``hi = inf``, ``sd`` NaN)
  and :attr:`Interval.method` says so.
- :func:`paired_interval`: the interval of ``candidate - baseline`` measured on the same seeds,
  the t-interval of the per-seed differences. The seed's share of the noise (shared data
  order, shared initial draws) cancels, so it is narrower than comparing two means.
- :func:`bootstrap_interval`: the percentile bootstrap of a mean, for values far from normal.
  With 2-5 values it covers less than it claims (it cannot see spread beyond the sample's):
  the search uses the t-interval.
- :func:`feasibility`: ``"feasible"`` when the whole interval of the worsening is within the
  limit, ``"infeasible"`` when the whole interval is beyond it, ``"uncertain"`` otherwise. With
  a two-sided interval at ``confidence`` c, each of the two verdicts is wrong with probability
  at most (1 - c) / 2 (a one-sided test each).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Verdict = Literal["feasible", "infeasible", "uncertain"]
VERDICTS: tuple[Verdict, ...] = ("feasible", "infeasible", "uncertain")
TOLERANCE = 1e-12  # a bound exactly at the limit counts as within it despite float rounding
UNBOUNDED = "unbounded: one value, no spread to estimate"


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided ``confidence`` interval ``[lo, hi]``; ``sd`` is the sample
    standard deviation of the ``n`` values (of the differences, for a paired interval);
    ``method`` says how the interval was made (``t``, ``paired t``, ``bootstrap``, or
    :data:`UNBOUNDED`)."""

    mean: float
    lo: float
    hi: float
    sd: float
    n: int
    confidence: float
    method: str

    @property
    def bounded(self) -> bool:
        """Whether both ends are finite (False with one value)."""
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: infinite ends and a NaN spread become None."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interval:
        def number(key: str, missing: float) -> float:
            value = data.get(key)
            return missing if value is None else float(value)

        return cls(number("mean", math.nan), number("lo", -math.inf), number("hi", math.inf),
                   number("sd", math.nan), int(data["n"]), float(data["confidence"]),
                   str(data["method"]))


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), e.g. 0.9, but got {confidence!r}.")
    return confidence


def _values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{what} needs at least one value, but got none.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} needs finite values, but got {array.tolist()}.")
    return array


@functools.lru_cache(maxsize=256)
def t_quantile(confidence: float, n: int) -> float:
    """The two-sided Student-t multiplier ``t(1 - α/2, n - 1)`` for ``n >= 2`` values."""
    from scipy.stats import t

    return float(t.ppf(0.5 + _check_confidence(confidence) / 2, n - 1))


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.9,
                  method: str = "t") -> Interval:
    """The Student-t interval of the mean of ``values`` (see the module docstring)."""
    confidence = _check_confidence(confidence)
    array = _values(values, "A mean's interval")
    n, mean = int(array.size), float(array.mean())
    if n == 1:
        return Interval(mean, -math.inf, math.inf, math.nan, 1, confidence, UNBOUNDED)
    sd = float(array.std(ddof=1))
    half = t_quantile(confidence, n) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n, confidence, method)


def paired_differences(candidate: Sequence[float] | Mapping[Any, float],
                       baseline: Sequence[float] | Mapping[Any, float]) -> np.ndarray:
    """``candidate - baseline`` per seed: by position for sequences, by key for mappings
    (``{seed: value}``), which must then hold the same seeds."""
    if isinstance(candidate, Mapping) or isinstance(baseline, Mapping):
        if not (isinstance(candidate, Mapping) and isinstance(baseline, Mapping)):
            raise TypeError("Pair two mappings {seed: value} or two sequences, not one of each.")
        if set(candidate) != set(baseline):
            raise ValueError(f"A paired difference needs the same seeds on both sides, but the "
                             f"candidate has {sorted(candidate)} and the baseline "
                             f"{sorted(baseline)}.")
        keys = sorted(candidate)
        candidate, baseline = [candidate[k] for k in keys], [baseline[k] for k in keys]
    a = _values(candidate, "A paired interval")
    b = _values(baseline, "A paired interval")
    if a.shape != b.shape:
        raise ValueError(f"A paired difference needs one baseline value per candidate value, "
                         f"but got {a.size} and {b.size}.")
    return a - b


def paired_interval(candidate: Sequence[float] | Mapping[Any, float],
                    baseline: Sequence[float] | Mapping[Any, float],
                    confidence: float = 0.9) -> Interval:
    """The interval of the mean of ``candidate - baseline`` over seeds measured on both."""
    return mean_interval(paired_differences(candidate, baseline), confidence, "paired t")


def bootstrap_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.9,
                       resamples: int = 2000, seed: int = 0) -> Interval:
    """The percentile bootstrap interval of the mean (``resamples`` draws with replacement
    from a generator seeded with ``seed``). See the module docstring for its small-n bias."""
    confidence = _check_confidence(confidence)
    array = _values(values, "A bootstrap interval")
    n, mean = int(array.size), float(array.mean())
    if n == 1:
        return Interval(mean, -math.inf, math.inf, math.nan, 1, confidence, UNBOUNDED)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(mean, float(lo), float(hi), float(array.std(ddof=1)), n, confidence,
                    "bootstrap")


def feasibility(worsening: Interval, limit: float) -> Verdict:
    """The verdict on an interval of a worsening (> 0: worse than the baseline) against the
    allowed ``limit``: ``feasible`` when ``hi <= limit``, ``infeasible`` when ``lo > limit``,
    ``uncertain`` when the interval straddles it (always, for an unbounded interval)."""
    if worsening.hi <= limit + TOLERANCE:
        return "feasible"
    if worsening.lo > limit + TOLERANCE:
        return "infeasible"
    return "uncertain"
