"""Replays of search strategies on an exhaustive table (``benchmarks/search_quality.py``).

The table holds, for every genome of a space and each of k training seeds, the test accuracy
after every epoch and the cost-only objectives (the same for every seed). A replay runs a
strategy against it as if it were training: each evaluation looks its values up, and the
epochs it would have trained are counted.

**The truth** is the seed-averaged table: each genome's accuracy is its mean over the k seeds
at the full budget; feasible when that mean is at most ``limit`` below the baseline's mean;
the true front is the feasible non-dominated set. Values are divided by the baseline's, and the
hypervolume uses the run folder's reference point (0 for a maximised objective, 2 for a
minimised one).

**What a strategy reports** is its own front, built from the values it observed (one seed's
accuracy for a single-fidelity sampler, a top-rung mean for the multi-fidelity one). It is
scored on the truth:

- ``hv``: the hypervolume of its members' *true* values (members infeasible on the truth
  dropped; the baseline always counted, the user has it anyway), as a fraction of the true
  front's;
- ``gain``: the same hypervolume as a share of the true front's gain over the baseline alone,
  ``(hv - hv_baseline) / (hv_front - hv_baseline)`` (1: the whole gain; 0: no better than the
  baseline);
- ``compute``: the epoch-trainings spent, as a fraction of the exhaustive grid's: every genome
  trained once, with one seed, for the full budget (the k-seed table itself costs k times
  that). Parent training (the same for every strategy) is not counted;
- ``false``: the share of its front members that are not on the true front.

Strategies: ``random``, ``nsga2``, ``tpe`` (minsearch's own samplers and defaults,
:func:`minsearch.search.samplers.make_sampler`, driven by ask/tell as the searcher drives them:
the baseline first, a repeated genome replaced by an unseen one at no cost, the constraint
stored on each trial), each evaluation with one seed drawn at random from the k; and the
multi-fidelity rule (:mod:`minsearch.search.promotion`) with new genomes drawn at random.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minsearch.objectives.constraint import Constraint
from minsearch.pareto import hypervolume, pareto_mask
from minsearch.search.promotion import (
    HalvingConfig,
    HalvingState,
    Rung,
    decide,
    final_front,
    rung_epochs,
)

COSTS = ("param_bytes", "peak_mem_infer_bytes", "flops")  # cost-only: known before training
KEEP = "keep"


@dataclass
class Table:
    """An exhaustive table: ``acc[g, s, e]`` the test accuracy of genome ``g`` trained with
    the ``s``-th seed for ``e`` epochs (NaN where it failed), ``costs[g]`` its cost-only
    objectives, ``params[g]`` its ``{gene: label}``."""

    genes: list[str]
    params: list[dict[str, str]]
    acc: np.ndarray  # (genomes, seeds, epochs + 1)
    costs: np.ndarray  # (genomes, len(COSTS))
    baseline: int
    limit: float = 0.02

    @property
    def epochs(self) -> int:
        return self.acc.shape[2] - 1

    @property
    def size(self) -> int:
        return len(self.params)

    @property
    def seeds(self) -> int:
        return self.acc.shape[1]

    @property
    def directions(self) -> tuple[str, ...]:
        return ("max",) + ("min",) * self.costs.shape[1]

    def values(self, genome: int, seed: int, epoch: int) -> np.ndarray:
        """Observed objectives: the seed's accuracy after ``epoch`` epochs, then the costs."""
        return np.concatenate([[self.acc[genome, seed, epoch]], self.costs[genome]])

    def failed(self, genome: int, seed: int) -> bool:
        return bool(np.isnan(self.acc[genome, seed, -1]))

    def key(self, genome: int) -> str:
        return ",".join(self.params[genome][g] for g in self.genes)


def load_table(path: str | Path, limit: float = 0.02) -> Table:
    """Read the CSV ``benchmarks/search_quality.py build`` writes."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"failed": str})
    epochs = sorted(int(c[4:]) for c in frame.columns if c.startswith("acc_"))
    first = list(frame.columns).index("seed")
    genes = list(frame.columns[:first])
    seeds = sorted(frame["seed"].unique())
    frame["failed"] = frame["failed"].fillna("")
    keys = list(dict.fromkeys(tuple(r) for r in frame[genes].astype(str).to_numpy()))
    index = {k: i for i, k in enumerate(keys)}
    acc = np.full((len(keys), len(seeds), len(epochs)), np.nan)
    costs = np.zeros((len(keys), len(COSTS)))
    for row in frame.to_dict("records"):  # itertuples would rename 'residual@blocks.0'
        g, s = index[tuple(str(row[n]) for n in genes)], seeds.index(row["seed"])
        if not row["failed"]:
            acc[g, s] = [row[f"acc_{e}"] for e in epochs]
            costs[g] = [row[c] for c in COSTS]
    params = [dict(zip(genes, k, strict=True)) for k in keys]
    baseline = index[tuple(KEEP for _ in genes)]
    return Table(genes, params, acc, costs, baseline, limit)


@dataclass(frozen=True)
class Truth:
    """The seed-averaged table's front: ``values`` (genomes, objectives) divided by the
    baseline's, the front's members, its hypervolume and the baseline's alone."""

    values: np.ndarray
    feasible: np.ndarray
    front: frozenset[int]
    hv_front: float
    hv_baseline: float
    reference: tuple[float, ...]


def truth(table: Table) -> Truth:
    mean = np.nanmean(table.acc[:, :, -1], axis=1)  # a genome failing one seed keeps the rest
    values = np.column_stack([mean, table.costs]) / np.column_stack(
        [mean[table.baseline:table.baseline + 1], table.costs[table.baseline:table.baseline + 1]])
    ok = ~np.isnan(mean)
    feasible = ok & (mean >= mean[table.baseline] - table.limit - 1e-12)
    reference = tuple(0.0 if d == "max" else 2.0 for d in table.directions)
    idx = np.nonzero(feasible)[0]
    front = frozenset(int(i) for i in idx[pareto_mask(values[idx], table.directions)])
    return Truth(values, feasible, front,
                 hypervolume(values[sorted(front)], table.directions, reference),
                 hypervolume(values[[table.baseline]], table.directions, reference), reference)


@dataclass(frozen=True)
class Score:
    hv: float
    gain: float
    compute: float
    false: float
    size: int


def score(table: Table, true: Truth, reported: Sequence[int], epochs_spent: int) -> Score:
    """Score a reported front on the truth (see the module docstring)."""
    members = sorted(set(reported))
    kept = [g for g in members if true.feasible[g]] + [table.baseline]
    hv = hypervolume(true.values[kept], table.directions, true.reference)
    false = sum(g not in true.front for g in members) / len(members) if members else 0.0
    gain = (hv - true.hv_baseline) / (true.hv_front - true.hv_baseline)
    return Score(hv / true.hv_front, gain, epochs_spent / (table.size * table.epochs), false,
                 len(members))


def observed_front(table: Table, observed: dict[int, np.ndarray], baseline: np.ndarray,
                   ) -> list[int]:
    """The feasible non-dominated genomes among ``observed`` (genome -> objectives), judged
    against the observed ``baseline`` values."""
    limit = Constraint("accuracy", "max", table.limit)
    names = [g for g, v in observed.items() if limit.feasible(float(v[0]), float(baseline[0]))]
    if not names:
        return []
    mask = pareto_mask(np.array([observed[g] for g in names]), table.directions)
    return [g for g, keep in zip(names, mask, strict=True) if keep]


class Proposer:
    """An Optuna sampler (minsearch's, with its defaults for ``trials``) proposing genomes by
    ask/tell as :class:`~minsearch.search.searcher.GenomeSearcher` drives it: a repeated
    genome is told FAIL and an unseen one, drawn with ``rng``, runs instead (at no cost); the
    constraint's value is stored on each trial before it is told."""

    def __init__(self, table: Table, sampler: str, trials: int, seed: int,
                 rng: np.random.Generator, seen: set[int]) -> None:
        import optuna

        from minsearch.search.samplers import make_sampler
        from minsearch.search.space import Gene, SpaceConfig

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        labels = {g: sorted({p[g] for p in table.params}, key=lambda x: (x != KEEP, x))
                  for g in table.genes}
        genes = [Gene(g, "gene", (g,), tuple(labels[g]), {x: x for x in labels[g]})
                 for g in table.genes]
        space = SpaceConfig.from_json({"sampler": sampler, "trials": trials, "seed": seed,
                                       "genes": [{"kind": "norm", "options": ["keep"]}]})
        self.study = optuna.create_study(sampler=make_sampler(space, genes),
                                         directions=["maximize"] + ["minimize"] * len(COSTS))
        self.distributions = {g: optuna.distributions.CategoricalDistribution(labels[g])
                              for g in table.genes}
        self.index = {tuple(p[g] for g in table.genes): i for i, p in enumerate(table.params)}
        self.table, self.rng, self.seen = table, rng, seen

    def ask(self):
        """``(trial, genome)`` for an unseen genome, or None when every genome is seen."""
        from optuna.trial import TrialState

        while len(self.seen) < self.table.size:
            trial = self.study.ask(self.distributions)
            genome = self.index[tuple(trial.params[g] for g in self.table.genes)]
            if genome not in self.seen:
                self.seen.add(genome)
                return trial, genome
            self.study.tell(trial, state=TrialState.FAIL)
            unseen = [g for g in range(self.table.size) if g not in self.seen]
            self.study.enqueue_trial(self.table.params[int(self.rng.choice(unseen))])
        return None

    def tell(self, trial, values: np.ndarray | None, baseline_first: float) -> None:
        """COMPLETE with ``values`` and the constraint against ``baseline_first``; FAIL when
        ``values`` is None."""
        from optuna.trial import TrialState

        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        trial.set_constraint("worsening", float(baseline_first - values[0] - self.table.limit))
        self.study.tell(trial, values.tolist())


def sampler_replay(table: Table, sampler: str, trials: int, seed: int, *,
                   per_replay: bool = False) -> tuple[list[int], int]:
    """One replay of an Optuna sampler for ``trials`` full-budget evaluations, each with one
    seed drawn at random (``per_replay``: one seed drawn for the whole replay, as a search
    with one ``seed`` in its task trains every trial); its reported front and the epochs it
    spent. The baseline is the first evaluation."""
    rng = np.random.default_rng(seed)
    replay_seed = int(rng.integers(table.seeds))
    proposer = Proposer(table, sampler, trials, seed, rng, seen=set())
    proposer.study.enqueue_trial(table.params[table.baseline])
    observed: dict[int, np.ndarray] = {}
    spent, baseline = 0, None
    while spent < trials and (asked := proposer.ask()) is not None:
        trial, genome = asked
        spent += 1
        s = replay_seed if per_replay else int(rng.integers(table.seeds))
        values = None if table.failed(genome, s) else table.values(genome, s, table.epochs)
        baseline = values if baseline is None else baseline  # the enqueued baseline is first
        proposer.tell(trial, values, float(baseline[0]))
        if values is not None:
            observed[genome] = values
    return observed_front(table, observed, baseline), spent * table.epochs


def halving_replay(table: Table, rungs: Sequence[Rung], reduction: float, budget: int,
                   seed: int, sampler: str | None = None) -> tuple[list[int], int]:
    """One replay of the multi-fidelity rule within ``budget`` epoch-trainings: the seeds in
    an order drawn per replay (every genome uses the same order: paired with the baseline),
    new genomes in a random order, or proposed by ``sampler`` told each genome's rung-0
    values (paired against the baseline's)."""
    rng = np.random.default_rng(seed)
    config = HalvingConfig(tuple(rungs), table.directions,
                           Constraint("accuracy", "max", table.limit), reduction,
                           tuple(int(s) for s in rng.permutation(table.seeds)))
    state = HalvingState(str(table.baseline))
    order = iter(int(g) for g in rng.permutation(table.size) if g != table.baseline)
    proposer = None
    if sampler is not None:
        trials = max(1, round(budget / table.epochs))
        proposer = Proposer(table, sampler, trials, seed, rng, seen={table.baseline})
    first, low = config.seeds[0], config.rungs[0].epochs
    exhausted = False
    while (job := decide(config, state, exhausted=exhausted)) is not None:
        trial = None
        if job.genome is None:
            asked = next(order, None) if proposer is None else proposer.ask()
            if asked is None:
                exhausted = True  # every genome started: the rest of the budget promotes
                continue
            trial, genome = (None, asked) if proposer is None else asked
            job = job.named(str(genome))
        if state.epochs_spent() + job.epochs > budget:
            break
        state.issue(job)
        g = int(job.genome)
        for w in job.work:
            if table.failed(g, w.seed):
                state.record_failure(job.genome)
                break
            for epoch in rung_epochs(config, w.start, w.stop):
                state.record(job.genome, w.seed, epoch, table.values(g, w.seed, epoch))
        if trial is not None:
            values = None if job.genome in state.failed else table.values(g, first, low)
            proposer.tell(trial, values, float(table.acc[table.baseline, first, low]))
    return [int(g) for g in final_front(config, state)], state.epochs_spent()


Strategy = Callable[[Table, float, int], tuple[list[int], int]]


def sampler_strategy(name: str, per_replay: bool = False) -> Strategy:
    def run(table: Table, budget: float, seed: int) -> tuple[list[int], int]:
        return sampler_replay(table, name, max(1, round(budget * table.size)), seed,
                              per_replay=per_replay)

    return run


def halving_strategy(rungs: Sequence[Rung], reduction: float,
                     sampler: str | None = None) -> Strategy:
    def run(table: Table, budget: float, seed: int) -> tuple[list[int], int]:
        return halving_replay(table, rungs, reduction,
                              round(budget * table.size * table.epochs), seed, sampler)

    return run


def parse_halving(spec: str) -> tuple[list[Rung], float, str | None]:
    """``"1x1+0.05,8x1+0.02,8x3/3@tpe"``: rungs of EPOCHSxSEEDS[+SLACK], then ``/REDUCTION``
    (default 3), then ``@SAMPLER`` proposing new genomes (default: a random order)."""
    spec, _, sampler = spec.partition("@")
    rungs_text, _, reduction = spec.partition("/")
    rungs = []
    for part in rungs_text.split(","):
        budget, _, slack = part.partition("+")
        epochs, seeds = budget.split("x")
        rungs.append(Rung(int(epochs), int(seeds), float(slack or 0)))
    return rungs, float(reduction or 3), sampler or None


def default_halving(epochs: int) -> str:
    """The halving rule's default knobs, for a table of ``epochs`` epochs: screen 1 epoch on
    1 seed (promoted when at most 0.2 below the baseline on top of the limit), then 2 epochs,
    then the full budget on 3 seeds; promote a third. Tuned on the digits table (in-sample:
    docs/search-quality.md)."""
    return f"1x1+0.2,2x1+0.1,{epochs}x3/3"


def strategies(epochs: int, halving: Sequence[str] = ()) -> dict[str, Strategy]:
    """Every strategy the benchmark compares, by name (``epochs``: the full budget), plus a
    halving strategy per spec in ``halving`` (:func:`parse_halving`)."""
    return {
        "random": sampler_strategy("random"),
        "nsga2": sampler_strategy("nsga2"),
        "tpe": sampler_strategy("tpe"),
        "nsga2-1seed": sampler_strategy("nsga2", per_replay=True),  # the tool before issue 10
        "tpe-1seed": sampler_strategy("tpe", per_replay=True),
        "random-3seeds": halving_strategy([Rung(epochs, 3)], 3),
        "halving": halving_strategy(*parse_halving(default_halving(epochs))),
        "halving-tpe": halving_strategy(*parse_halving(default_halving(epochs) + "@tpe")),
        **{f"halving[{spec}]": halving_strategy(*parse_halving(spec)) for spec in halving},
    }


def replay_scores(table: Table, strategy: Strategy, budget: float, replays: int,
                  ) -> list[Score]:
    true = truth(table)
    return [score(table, true, *strategy(table, budget, seed)) for seed in range(replays)]
