"""The controller's searcher: Optuna samplers inside Ray Tune's ``OptunaSearch``.

What this adds to ``OptunaSearch`` (each point is a trap measured in DESIGN.md):

- the space (one categorical distribution per gene) and the multi-objective ``metric``/``mode``
  lists are given to the searcher, never to ``TuneConfig``, so the study stays
  multi-objective;
- the baseline (every gene ``keep``) is enqueued as the first point and runs alone: no other
  trial is suggested until it has finished, so every later trial's accuracy drop is known
  when Optuna is told its values;
- the accuracy-drop constraint is stored on the Optuna trial (``Trial.set_constraint``) just
  before ``tell``: no ``constraints_func`` closure to pickle (and Optuna 5 deprecates it).
  It limits the first objective, whatever it is: the drop of ``accuracy``
  (``max_accuracy_drop``), the increase of ``loss`` (``max_loss_increase``);
- a proposal that repeats an earlier genome is told FAIL (user attribute
  ``minsearch_duplicate``) and a seeded random unseen genome runs in its place (until every
  genome of the space has been seen): NSGA-II and TPE repeat themselves often in small
  categorical spaces (5 of 24 NSGA-II proposals in the digits search), and a repeat costs a
  trial and teaches nothing;
- how a trial ended is told by this class: FAIL on error, PRUNED when the last result lacks
  the objectives (stopped early), COMPLETE otherwise. (Ray's own code, given a list of
  metrics, tells a result without them as COMPLETE with ``None`` values; Optuna refuses,
  Ray logs a warning and the Optuna trial stays RUNNING for good: measured here.)
- the study lives in SQLite in the run folder, so a restored search and optuna-dashboard see
  the same trials.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from minsearch.pareto import worsening
from minsearch.search.plan import STUDY_NAME, storage_url
from minsearch.search.space import Gene, SpaceConfig, baseline_params

ENUMERATE_LIMIT = 100_000  # spaces up to this size are enumerated to find unseen genomes
DUPLICATE = "minsearch_duplicate"  # user attr of asked-but-skipped duplicate proposals
CONSTRAINT = "accuracy_drop"  # worsening of the first objective - allowed worsening <= 0


def make_sampler(space: SpaceConfig, genes: list[Gene]) -> optuna.samplers.BaseSampler:
    """The sampler a space names, seeded. Constraints reach NSGA-II, TPE and GP through each
    trial's stored constraint values (``Trial.set_constraint``, Optuna >= 5)."""
    seed = space.seed
    if space.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=space.population_size, seed=seed)
    if space.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          n_startup_trials=max(2, space.trials // 4))
    if space.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(2, space.trials // 4))
    if space.sampler == "grid":
        return optuna.samplers.GridSampler({g.name: list(g.labels) for g in genes}, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


class MinsearchSearch(OptunaSearch):
    """``OptunaSearch`` with the baseline first and alone, and the accuracy-drop constraint."""

    def __init__(self, genes: list[Gene], space: SpaceConfig, metrics: list[str],
                 modes: list[str], run_dir: str | Path, max_accuracy_drop: float | None):
        self._max_drop = max_accuracy_drop
        self._baseline_id: str | None = None
        self._baseline_done = False
        self._baseline_accuracy: float | None = None
        self._seen: set[tuple[tuple[str, str], ...]] = set()  # genomes proposed so far
        self._space_size = math.prod(len(g.labels) for g in genes)
        self._labels = {g.name: list(g.labels) for g in genes}
        self._seed = space.seed
        distributions = {g.name: optuna.distributions.CategoricalDistribution(list(g.labels))
                         for g in genes}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(storage_url(run_dir))
        super().__init__(space=distributions, metric=metrics, mode=modes,
                         points_to_evaluate=[baseline_params(genes)],
                         sampler=make_sampler(space, genes),
                         study_name=STUDY_NAME, storage=storage)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    @property
    def baseline_trial_id(self) -> str | None:
        return self._baseline_id

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._baseline_id is not None and not self._baseline_done:
            return None  # wait: the baseline runs alone (see module docstring)
        params = super().suggest(trial_id)
        if self._baseline_id is None:
            self._baseline_id = trial_id  # the first ask pops the enqueued baseline
        key = tuple(sorted(params.items()))
        if key in self._seen and len(self._seen) < self._space_size:
            # A genome already proposed (samplers repeat themselves in small categorical
            # spaces): tell Optuna it is a duplicate, never run it, and run a random unseen
            # genome in its place (enqueued, so Optuna records exactly what runs).
            duplicate = self._ot_trials.pop(trial_id)
            duplicate.set_user_attr(DUPLICATE, True)
            self._tell(duplicate, None, optuna.trial.TrialState.FAIL)
            replacement = self._unseen_genome()
            if replacement is not None:
                self._ot_study.enqueue_trial(replacement)
            params = super().suggest(trial_id)
        self._seen.add(tuple(sorted(params.items())))
        return params

    def _unseen_genome(self) -> dict[str, str] | None:
        """A seeded random genome not proposed before (None if none is found)."""
        rng = random.Random(f"{self._seed}-{len(self._seen)}")
        names = list(self._labels)
        if self._space_size <= ENUMERATE_LIMIT:
            unseen = [c for c in itertools.product(*self._labels.values())
                      if tuple(sorted(zip(names, c, strict=True))) not in self._seen]
            return dict(zip(names, rng.choice(unseen), strict=True)) if unseen else None
        for _ in range(1000):
            genome = {n: rng.choice(self._labels[n]) for n in names}
            if tuple(sorted(genome.items())) not in self._seen:
                return genome
        return None

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Tell Optuna how the trial ended (replaces ``OptunaSearch``'s version, which with a
        list of metrics tells a result without them as COMPLETE with ``None`` values: Optuna
        refuses that, Ray only logs a warning, and the trial stays RUNNING forever)."""
        result = result or {}
        accuracy = None if error else result.get(self._metric[0])  # or loss: first objective
        if trial_id == self._baseline_id:
            self._baseline_done = True
            self._baseline_accuracy = accuracy
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        if ot_trial.number in self._finished_numbers():
            return  # told before the driver was killed; Ray's older snapshot re-ran it
        values = [result.get(name) for name in self._metric]
        if error:
            self._tell(ot_trial, None, optuna.trial.TrialState.FAIL)
        elif any(v is None for v in values):  # stopped early: no final measurements
            self._tell(ot_trial, None, optuna.trial.TrialState.PRUNED)
        else:
            if (self._max_drop is not None and accuracy is not None
                    and self._baseline_accuracy is not None):
                drop = worsening(accuracy, self._baseline_accuracy, self._mode[0])
                ot_trial.set_constraint(CONSTRAINT, drop - self._max_drop)
            self._tell(ot_trial, [float(v) for v in values], optuna.trial.TrialState.COMPLETE)

    def _tell(self, ot_trial, values, state) -> None:
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except RuntimeError as err:
            # GridSampler calls study.stop() once the grid is done, which Optuna only allows
            # inside study.optimize; the trial is stored before that (tell's `finally`).
            if "Study.stop" not in str(err):
                raise

    def _finished_numbers(self) -> set[int]:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                  optuna.trial.TrialState.PRUNED)
        return {t.number for t in self._ot_study.get_trials(deepcopy=False, states=states)}
