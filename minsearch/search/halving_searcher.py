"""Multi-fidelity search behind Ray Tune's Searcher interface: the promotion rule
(:mod:`minsearch.search.promotion`) deciding, Optuna proposing the new genomes.

The controller builds it for ``strategy: multifidelity`` (:mod:`minsearch.search.
multifidelity`); the jobs run in :mod:`minsearch.search.job_trainable`. Tested without Ray
(``tests/search/test_halving_searcher.py``) and in a live search killed mid-promotion
(``tests/search/test_multifidelity.py``).

The protocol, one Ray trial per :class:`~minsearch.search.promotion.Job`:

- :meth:`HalvingSearcher.suggest` asks :func:`~minsearch.search.promotion.decide`. A new
  genome (or the baseline, the first job) is asked of Optuna through
  :class:`~minsearch.search.searcher.GenomeSearcher` (the baseline first, repeats replaced);
  a promotion reuses the genome's params. The trial's config holds the params plus
  :data:`WORK` (``[[seed, start, stop], ...]``: train that seed from the checkpoint at epoch
  ``start``, the parent at 0, to ``stop``) and :data:`RUNG_EPOCHS` (where to measure);
- the trial's final result holds :data:`RUNG_VALUES`: ``{seed: {epoch: [objectives in the
  searcher's order]}}`` for every rung epoch it passed (JSON keys are strings);
- :meth:`on_trial_complete` records those values; when a genome's rung-0 (screening) work
  ends, its Optuna trial is told COMPLETE with its rung-0 means over the rung's seeds,
  paired with the baseline's rung-0 means by the searcher's constraint (as for any trial: one
  that ends before the baseline is held until the baseline is told). That is what the
  benchmarked ``halving-tpe`` told TPE (``halving_replay`` in ``benchmarks/
  quality_replay.py``): it met the issue-10 target out of sample at 0.29 of the exhaustive
  compute, new genomes at random only at 0.48 (docs/search-quality.md). A genome is told
  once: its promotions tell Optuna nothing (their top-rung means are in the run folder's
  per-genome records, :func:`~minsearch.search.multifidelity.genome_records`, which the
  results, the front and MLflow are built from; the study holds screening values only);
- an error before rung 0 is complete fails the genome (FAIL, never promoted); a result with
  ``rejected`` (a genome over a cost budget, refused untrained) fails it too and is told
  PRUNED. A genome that fails in a promotion is never promoted again; Optuna keeps its
  screening values;
- the search ends (:attr:`FINISHED`) when ``decide`` has nothing left, or its next job no
  longer fits ``budget_epochs``, and no job is running; new genomes stop at the space's
  ``trials`` (or its size). :meth:`close` then tells PRUNED every genome whose screening
  never finished, and marks the study finished.

The state pickles with the searcher (Ray's ``save``/``restore``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from minsearch.objectives.constraint import Constraint
from minsearch.search.promotion import (
    RUNG_EPOCHS,
    RUNG_VALUES,
    WORK,
    HalvingConfig,
    HalvingState,
    Job,
    decide,
    rung_epochs,
)
from minsearch.search.searcher import GenomeSearcher
from minsearch.search.space import Gene, SpaceConfig, baseline_params

__all__ = ["FINISHED_ATTR", "RUNG_EPOCHS", "RUNG_VALUES", "WORK", "HalvingSearcher",
           "genome_name"]
FINISHED_ATTR = "minsearch_halving_finished"  # study user attr: the searcher said FINISHED


def genome_name(params: Mapping[str, str]) -> str:
    """A genome's key in the halving state: its params as sorted JSON."""
    return json.dumps(dict(params), sort_keys=True)


class HalvingSearcher(GenomeSearcher):
    """:class:`GenomeSearcher` whose trials are the jobs of the promotion rule."""

    def __init__(self, genes: list[Gene], space: SpaceConfig, directions: dict[str, str],
                 constraint: Constraint, storage_url: str | None,
                 halving: HalvingConfig) -> None:
        super().__init__(genes, space, directions, constraint, storage_url)
        self.halving = halving
        self.halving_state = HalvingState(genome_name(baseline_params(genes)))
        self._jobs: dict[str, Job] = {}  # Ray trial id -> the job it runs
        self._asked_by: dict[str, str] = {}  # genome -> Ray trial id holding its Optuna trial
        self._params: dict[str, dict[str, str]] = {}  # genome -> its params
        self._told: set[str] = set()  # genomes whose Optuna trial was told (or held to be)
        self._exhausted = False
        self._genomes = min(self._space_size, space.trials)  # new genomes it may start
        self._budget = space.budget_epochs  # epoch-trainings it may issue (None: no cap)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        job = decide(self.halving, self.halving_state, exhausted=self._exhausted)
        if job is not None and job.genome is None and len(self._seen) >= self._genomes:
            self._exhausted = True  # every genome asked: the budget left promotes
            job = decide(self.halving, self.halving_state, exhausted=True)
        spent = self.halving_state.epochs_spent()
        if job is not None and self._budget is not None and spent + job.epochs > self._budget:
            job = None  # the next job no longer fits the budget
        if job is None:
            if self._jobs:
                return None  # a running job's result may make a promotion due
            self.close()
            return self.FINISHED
        if job.genome is None or job.genome not in self._params:  # new, or the baseline
            params = super().suggest(trial_id)
            name = genome_name(params)
            if job.genome is not None and name != job.genome:
                raise AssertionError(f"the study's first trial is not the baseline: {name}")
            job = job.named(name)
            self._asked_by[name], self._params[name] = trial_id, params
        self.halving_state.issue(job)
        self._jobs[trial_id] = job
        epochs = sorted({e for w in job.work
                         for e in rung_epochs(self.halving, w.start, w.stop)})
        return {**self._params[job.genome], WORK: [[w.seed, w.start, w.stop] for w in job.work],
                RUNG_EPOCHS: epochs}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        job = self._jobs.pop(trial_id, None)
        if job is None:
            return  # told already (a re-run from an older snapshot)
        genome, state = job.genome, self.halving_state
        if error or (result or {}).get("rejected"):  # failed, or refused by a budget
            state.record_failure(genome)
            self._tell_once(genome, None if error else {}, error=error)
            return
        values = (result or {}).get(RUNG_VALUES, {})
        values = json.loads(values) if isinstance(values, str) else values
        for seed, by_epoch in values.items():
            for epoch, row in by_epoch.items():
                if (genome, int(seed), int(epoch)) not in state.values:
                    state.record(genome, int(seed), int(epoch), row)
        if (genome, job.rung) in state.pending:  # ended short of its work (stopped, lost)
            state.abandon(job, self.halving)  # decide() issues the rest again
        if state.at_rung(self.halving, genome, 0):  # screened: rung-0 means, once
            means = state.mean(self.halving, genome, 0)
            self._tell_once(genome, dict(zip(self.metric, means.tolist(), strict=True)))

    def _tell_once(self, genome: str, result: dict | None, error: bool = False) -> None:
        """Tell ``genome``'s Optuna trial (through :class:`GenomeSearcher`, which holds it
        until the baseline is told) unless it was told before."""
        if genome not in self._told:
            self._told.add(genome)
            super().on_trial_complete(self._asked_by[genome], result, error=error)

    def close(self) -> None:
        """Tell PRUNED every genome whose screening never finished (the search ended), and
        mark the study finished (:data:`FINISHED_ATTR`: what the run folder's status reads)."""
        for genome in self._asked_by:
            self._tell_once(genome, {})
        self.study.set_user_attr(FINISHED_ATTR, True)
