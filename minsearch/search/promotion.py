"""Multi-fidelity, multi-objective successive halving: which candidate gets more budget next.

A pure rule, in the manner of Syne Tune's MO-ASHA (asynchronous successive halving whose
promotions rank candidates by non-dominated sorting instead of one metric). Nothing here knows
Ray or Optuna: the caller (the live searcher, or the replay of ``benchmarks/search_quality.py``)
holds a :class:`HalvingState`, asks :func:`decide` what to run, runs it, and records what it
measured. The state is plain data and pickles.

**Rungs.** :class:`HalvingConfig` lists rungs of increasing budget, each a number of epochs
and a number of seeds (the first ``seeds`` of ``HalvingConfig.seeds``), e.g. 1 epoch x 1 seed,
8 x 1, 8 x 3. A candidate *is at* rung ``r`` when, for every seed of rung ``r``, its objectives
after ``Rung.epochs`` epochs are recorded. Going up a rung continues each seed's training from
where it stopped (the work ``(seed, start, stop)`` of a :class:`Job`) and trains the rung's new
seeds from the start; no (genome, seed, epoch) is ever trained twice (:meth:`HalvingState.issue`
refuses it). The baseline (every gene kept) is run through every rung first: each candidate is
judged against the baseline measured at the same epochs on the same seeds (a paired
comparison; a seed's own luck cancels).

**Promotion** (:func:`decide`, asynchronous as in ASHA: no rung waits to fill): from the
highest rung down, the candidates at rung ``r`` (with the baseline there too) are ranked by
:func:`promotion_order`: feasible ones only (the first objective's mean worsening against the
baseline's, through the task's :class:`~minsearch.objectives.constraint.Constraint`, with the
rung's ``slack`` added to its limit: early values are noisier and lower), by non-dominated rank
over *all* objectives (cost-only ones such as ``param_bytes`` and ``flops``, known before
training, count like the others), ties within a rank broken by the larger hypervolume
contribution. The first ``floor(n / reduction)`` of that order (``n`` candidates at the rung)
may go up; the first of them not already promoted is. When no promotion is due, a new genome
starts at rung 0; once no new genome can be had (``decide(..., exhausted=True)``), the best
feasible candidates below the cut go up instead, until none is left. Values are means over
the rung's seeds divided by the baseline's (so the reference point is 0 for a maximised
objective, 2 for a minimised one, as the run folder's hypervolume).

**The front** (:func:`final_front`) holds only candidates at the top rung, with their top-rung
means: a candidate stopped at a lower rung never enters it with its early values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from minsearch.objectives.constraint import Constraint
from minsearch.pareto import hypervolume_contributions, non_dominated_sort


@dataclass(frozen=True)
class Rung:
    """``epochs`` of training on each of ``seeds`` seeds; ``slack``: how much more worsening
    of the first objective than the constraint allows is still promoted from this rung."""

    epochs: int
    seeds: int
    slack: float = 0.0


@dataclass(frozen=True)
class HalvingConfig:
    """The rungs (budget increasing, the last one the full budget the front is read from), the
    objectives' directions (the first is the constrained one), the constraint, the reduction
    factor and the training seeds in the order the rungs use them."""

    rungs: tuple[Rung, ...]
    directions: tuple[str, ...]
    constraint: Constraint
    reduction: float = 3.0
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ValueError("Successive halving needs at least one rung, e.g. "
                             "(Rung(epochs=8, seeds=1),).")
        for low, high in zip(self.rungs, self.rungs[1:], strict=False):
            if high.epochs < low.epochs or high.seeds < low.seeds or high == low:
                raise ValueError(f"Each rung must give more budget than the one below it (no "
                                 f"fewer epochs, no fewer seeds), but got {low} then {high}.")
        if self.rungs[-1].seeds > len(self.seeds):
            raise ValueError(f"The top rung uses {self.rungs[-1].seeds} seeds but only "
                             f"{len(self.seeds)} are given ({self.seeds}); add seeds.")
        if self.reduction <= 1:
            raise ValueError(f"`reduction` must be > 1 (3 promotes a third), but got "
                             f"{self.reduction}.")

    def rung_seeds(self, rung: int) -> tuple[int, ...]:
        return self.seeds[: self.rungs[rung].seeds]

    @property
    def top(self) -> int:
        return len(self.rungs) - 1


@dataclass(frozen=True)
class Work:
    """Train ``seed`` from epoch ``start`` (a checkpoint, or the parent when 0) to ``stop``,
    recording the objectives after every rung epoch in ``(start, stop]``."""

    seed: int
    start: int
    stop: int


@dataclass(frozen=True)
class Job:
    """Bring ``genome`` to ``rung``; ``genome`` is None for a new genome, which the caller
    names (:meth:`named`) before :meth:`HalvingState.issue`."""

    genome: str | None
    rung: int
    work: tuple[Work, ...]

    @property
    def epochs(self) -> int:
        """The epoch-trainings this job costs."""
        return sum(w.stop - w.start for w in self.work)

    def named(self, genome: str) -> Job:
        return dataclasses.replace(self, genome=genome)


@dataclass
class HalvingState:
    """What has been run and measured. ``values[(genome, seed, epoch)]`` holds the objectives
    (in the config's order); ``trained[(genome, seed)]`` the epochs trained or issued;
    ``pending`` the issued jobs not yet complete, by ``(genome, rung)``."""

    baseline: str
    values: dict[tuple[str, int, int], tuple[float, ...]] = field(default_factory=dict)
    trained: dict[tuple[str, int], int] = field(default_factory=dict)
    pending: dict[tuple[str, int], Job] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)  # genomes in the order they started

    def issue(self, job: Job) -> None:
        """Mark ``job`` as running. Refuses work that would train an epoch already trained or
        issued (the exact accounting a resumed search relies on)."""
        if job.genome is None:
            raise ValueError("Name the new genome first: job.named(key).")
        for w in job.work:
            done = self.trained.get((job.genome, w.seed), 0)
            if w.start != done or w.stop <= w.start:
                raise ValueError(f"Job {job} would train {job.genome!r} seed {w.seed} from "
                                 f"epoch {w.start} to {w.stop}, but it has {done} epochs "
                                 f"trained or issued.")
        for w in job.work:
            self.trained[(job.genome, w.seed)] = w.stop
        if job.genome not in self.order:
            self.order.append(job.genome)
        self.pending[(job.genome, job.rung)] = job

    def record(self, genome: str, seed: int, epoch: int, values: Sequence[float]) -> None:
        """The objectives of ``genome`` trained with ``seed`` for ``epoch`` epochs."""
        key = (genome, seed, epoch)
        if key in self.values:
            raise ValueError(f"{key} is recorded already; no epoch is measured twice.")
        if epoch > self.trained.get((genome, seed), 0):
            raise ValueError(f"{key} was never issued (trained: "
                             f"{self.trained.get((genome, seed), 0)} epochs).")
        self.values[key] = tuple(float(v) for v in values)
        self._close(genome)

    def abandon(self, job: Job, config: HalvingConfig) -> None:
        """``job`` will never report (its trial was lost: a driver killed before its
        snapshot): roll each seed back to its last recorded rung epoch, so that :func:`decide`
        issues the rest again and nothing is lost or trained twice (the caller keeps a
        checkpoint at every rung epoch)."""
        for w in job.work:
            recorded = [e for e in rung_epochs(config, w.start, w.stop)
                        if (job.genome, w.seed, e) in self.values]
            self.trained[(job.genome, w.seed)] = max(recorded, default=w.start)
        self.pending.pop((job.genome, job.rung), None)

    def record_failure(self, genome: str) -> None:
        """``genome`` failed (diverged): never promoted, never on the front."""
        self.failed.add(genome)
        self._close(genome)

    def _close(self, genome: str) -> None:
        for (name, rung), job in list(self.pending.items()):
            done = all((name, w.seed, w.stop) in self.values for w in job.work)
            if name == genome and (done or genome in self.failed):
                del self.pending[(name, rung)]

    def at_rung(self, config: HalvingConfig, genome: str, rung: int) -> bool:
        """Whether every seed of ``rung`` has its values at the rung's epochs recorded."""
        epochs = config.rungs[rung].epochs
        return genome not in self.failed and all(
            (genome, s, epochs) in self.values for s in config.rung_seeds(rung))

    def mean(self, config: HalvingConfig, genome: str, rung: int) -> np.ndarray:
        """Objectives averaged over the rung's seeds, at its epochs."""
        epochs = config.rungs[rung].epochs
        return np.mean([self.values[(genome, s, epochs)] for s in config.rung_seeds(rung)],
                       axis=0)

    def epochs_spent(self) -> int:
        """Epoch-trainings issued so far (each (genome, seed) counted up to its last epoch)."""
        return sum(self.trained.values())


def promotion_order(values: np.ndarray, directions: Sequence[str],
                    reference: Sequence[float]) -> list[int]:
    """Row indices of ``values`` best first: by non-dominated rank, then by hypervolume
    contribution within that rank (larger first), then by row (earlier first)."""
    rows = tuple(tuple(float(v) for v in row) for row in np.asarray(values, dtype=float))
    return list(_order(rows, tuple(directions), tuple(float(r) for r in reference)))


@functools.lru_cache(maxsize=256)
def _order(rows: tuple[tuple[float, ...], ...], directions: tuple[str, ...],
           reference: tuple[float, ...]) -> tuple[int, ...]:
    """:func:`promotion_order`, memoised: a rung's ranking is asked for again at every
    decision until a new result reaches that rung (hypervolumes in 4 objectives cost ms)."""
    if not rows:
        return ()
    values = np.array(rows)
    ranks = non_dominated_sort(values, directions)
    contribution = np.zeros(len(values))
    for rank in np.unique(ranks):
        members = np.nonzero(ranks == rank)[0]
        contribution[members] = hypervolume_contributions(values[members], directions,
                                                          reference)
    return tuple(sorted(range(len(values)), key=lambda i: (ranks[i], -contribution[i], i)))


def _reference(directions: Sequence[str]) -> list[float]:
    return [0.0 if d == "max" else 2.0 for d in directions]


def _relative(config: HalvingConfig, state: HalvingState, genomes: Sequence[str],
              rung: int) -> np.ndarray:
    """Rung means divided by the baseline's at the same rung (same seeds, same epochs)."""
    base = state.mean(config, state.baseline, rung)
    scale = np.where(base == 0, 1.0, np.abs(base))
    return np.array([state.mean(config, g, rung) / scale for g in genomes])


def feasible_at(config: HalvingConfig, state: HalvingState, genome: str, rung: int,
                slack: float | None = None) -> bool:
    """The first objective's mean worsening over the rung's seeds against the baseline's
    (paired: the same seeds) is within the constraint's limit plus the rung's ``slack``."""
    slack = config.rungs[rung].slack if slack is None else slack
    constraint = config.constraint
    if constraint.max_worsening is not None:
        constraint = dataclasses.replace(constraint,
                                         max_worsening=constraint.max_worsening + slack)
    first = float(state.mean(config, genome, rung)[0])
    return bool(constraint.feasible(first, float(state.mean(config, state.baseline, rung)[0])))


def ranked(config: HalvingConfig, state: HalvingState, rung: int, *,
           cut: bool = True) -> list[str]:
    """The candidates at ``rung`` that may be promoted from it, best first (see the module
    docstring); the baseline is ranked with them but never listed. ``cut=False``: every
    feasible one, not only the first ``floor(n / reduction)``."""
    if not state.at_rung(config, state.baseline, rung):
        return []
    here = [g for g in state.order if g != state.baseline and state.at_rung(config, g, rung)]
    allowed = math.floor(len(here) / config.reduction)
    feasible = [g for g in here if feasible_at(config, state, g, rung)]
    pool = [state.baseline, *feasible]
    order = promotion_order(_relative(config, state, pool, rung), config.directions,
                            _reference(config.directions))
    best = [pool[i] for i in order if pool[i] != state.baseline]
    return best[:allowed] if cut else best


def _job(config: HalvingConfig, state: HalvingState, genome: str | None, rung: int) -> Job:
    stop = config.rungs[rung].epochs
    work = []
    for seed in config.rung_seeds(rung):
        start = 0 if genome is None else state.trained.get((genome, seed), 0)
        if start < stop:
            work.append(Work(seed, start, stop))
    return Job(genome, rung, tuple(work))


def decide(config: HalvingConfig, state: HalvingState, *,
           exhausted: bool = False) -> Job | None:
    """What to run next: the baseline up to the top rung first, then the first promotion due
    (highest rung first), else a new genome at rung 0 (``Job.genome`` None; it may start while
    the baseline runs: the baseline is needed only to judge it). None when the baseline
    failed: nothing can be judged.

    ``exhausted``: no new genome can be had (every genome of the space has started): instead
    of one, the best feasible candidate below a rung's cut is promoted (highest rung first),
    so a budget larger than successive halving needs goes to the candidates nearest the
    front; None when none is left."""
    base = state.baseline
    if base in state.failed:
        return None  # nothing can be judged without it
    if (base, config.top) not in state.pending and not state.at_rung(config, base, config.top):
        return _job(config, state, base, config.top)
    for cut in (True, False) if exhausted else (True,):
        for rung in range(config.top - 1, -1, -1):
            for genome in ranked(config, state, rung, cut=cut):
                if (genome, rung + 1) not in state.pending and not any(
                        state.at_rung(config, genome, r)
                        for r in range(rung + 1, config.top + 1)):
                    return _job(config, state, genome, rung + 1)
    return None if exhausted else _job(config, state, None, 0)


def rung_epochs(config: HalvingConfig, start: int, stop: int) -> list[int]:
    """The rung epochs in ``(start, stop]``: where a job's work records values."""
    return sorted({r.epochs for r in config.rungs if start < r.epochs <= stop})


def final_front(config: HalvingConfig, state: HalvingState) -> list[str]:
    """The feasible non-dominated candidates at the top rung (with the baseline among them
    when it is not dominated), judged on their top-rung means; early values never count."""
    top = config.top
    if not state.at_rung(config, state.baseline, top):
        return []
    done = [g for g in state.order if state.at_rung(config, g, top)]
    feasible = [g for g in done if feasible_at(config, state, g, top, slack=0.0)]
    if not feasible:
        return []
    means = np.array([state.mean(config, g, top) for g in feasible])
    mask = non_dominated_sort(means, config.directions) == 0
    return [g for g, keep in zip(feasible, mask, strict=True) if keep]


def front_values(config: HalvingConfig, state: HalvingState,
                 genomes: Sequence[str]) -> Mapping[str, np.ndarray]:
    """The top-rung means of ``genomes`` (objectives in the config's order)."""
    return {g: state.mean(config, g, config.top) for g in genomes}


# The live protocol's keys (minsearch.search.halving_searcher, the trainable's jobs).
WORK = "minsearch_work"  # trial config key: [[seed, start, stop], ...]
RUNG_EPOCHS = "minsearch_rung_epochs"  # trial config key: the epochs to measure at
RUNG_VALUES = "rung_values"  # result key: {seed: {epoch: [values]}}
