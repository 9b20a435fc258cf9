"""The controller's searcher: an Optuna study driven through its public ask/tell interface,
as a Ray Tune :class:`~ray.tune.search.Searcher`.

Ray calls :meth:`GenomeSearcher.suggest` when it can start a trial and
:meth:`GenomeSearcher.on_trial_complete` when one ends; this class turns those into
``study.ask`` and ``study.tell``. What it adds (each point a trap measured in DESIGN.md):

- the space (one categorical distribution per gene) and the objectives with their directions
  belong to the searcher, never to ``TuneConfig``, so the study stays multi-objective;
- the baseline (every gene ``keep``) is enqueued as the study's first trial; other trials
  start beside it (see below), but one that ends before the baseline is *held* and told only
  once the baseline has been told, so every trial's worsening of the first objective is known
  when Optuna is told its values. Why not make the baseline run alone: Ray Tune hands a
  pending trial the cached worker of a trial that just ended (``reuse_actors``) and drops the
  worker it was starting for it; a fresh worker (Python, Ray, torch, timm: 5-11 s on 2 busy
  cores) takes longer to start than a small trial lasts, so with the baseline alone the
  second worker was dropped again and again and every trial ran in one worker, one at a time
  (issue 15). Starting the first ``max_concurrent`` trials together starts their workers
  together, and reused, they stay;
- the constraint (:class:`~minsearch.objectives.constraint.Constraint`: how much worse than
  the baseline the first objective may get, for an accuracy or a loss alike) is stored on the
  trial with ``Trial.set_constraint`` just before ``tell``; NSGA-II, TPE and GP read it from
  there (no ``constraints_func`` to pickle);
- a proposal that repeats an earlier genome is told FAIL with user attribute
  ``minsearch_duplicate`` and a random unseen genome, drawn from a generator seeded with the
  space's ``seed`` and the number of genomes seen, is enqueued and runs in its place (until
  every genome of the space has been seen): NSGA-II and TPE repeat themselves often in small
  categorical spaces (5 of 24 NSGA-II proposals in the digits search);
- how a trial ended is told explicitly: FAIL on error, PRUNED when the last result lacks the
  objectives (stopped early), COMPLETE otherwise; a trial is told once, and a trial already
  finished in the study (told before a driver kill; Ray re-ran it from its final checkpoint)
  is not told again;
- each Optuna trial carries its Ray trial id (user attribute ``minsearch_trial_id``). A trial
  that a stopped driver (Ctrl-C, SIGTERM) ended FAIL in the study is listed in the study's user
  attribute ``minsearch_interrupted``; when the resumed search finishes that Ray trial, its
  outcome is added to the study as a new trial with the same params (``study.add_trial``,
  user attribute ``minsearch_resumes``: the number it replaces), so the study holds exactly
  one finished trial per Ray trial;
- the study lives in SQLite in the run folder, so a restored search and optuna-dashboard see
  the same trials.

Ray pickles the searcher (into the tuner, and at every experiment snapshot through
:meth:`save`); everything it holds pickles: plain data, the study (Optuna pickles its storage
as a URL) with its sampler's random state, and the live trials of running trials.
"""

from __future__ import annotations

import itertools
import math
import pickle
import random
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from minsearch.objectives.constraint import Constraint
from minsearch.search.run_dir import STUDY_NAME
from minsearch.search.samplers import make_sampler
from minsearch.search.space import Gene, SpaceConfig, baseline_params

ENUMERATE_LIMIT = 100_000  # spaces up to this size are enumerated to find unseen genomes
DUPLICATE = "minsearch_duplicate"  # user attr of asked-but-skipped duplicate proposals
TRIAL_ID = "minsearch_trial_id"  # user attr: the Ray trial id (also MLflow's trial tag)
INTERRUPTED = "minsearch_interrupted"  # study user attr: {number: Ray trial id} a stop ended
RESUMES = "minsearch_resumes"  # user attr: the interrupted trial's number this one replaces
CONSTRAINT = "worsening"  # worsening of the first objective minus the allowed worsening
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def _key(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(params.items()))


def unseen_genome(labels: Mapping[str, Sequence[str]], seen: set[tuple[tuple[str, str], ...]],
                  seed: str) -> dict[str, str] | None:
    """A random genome (one label per gene) not in ``seen``, drawn with ``random.Random(seed)``;
    None when every genome has been seen (or, in a space too large to enumerate, when 1000
    draws found none)."""
    rng = random.Random(seed)
    names = list(labels)
    if math.prod(len(v) for v in labels.values()) <= ENUMERATE_LIMIT:
        unseen = [c for c in itertools.product(*labels.values())
                  if _key(dict(zip(names, c, strict=True))) not in seen]
        return dict(zip(names, rng.choice(unseen), strict=True)) if unseen else None
    for _ in range(1000):
        genome = {n: rng.choice(list(labels[n])) for n in names}
        if _key(genome) not in seen:
            return genome
    return None


class GenomeSearcher(Searcher):
    """Optuna ask/tell behind Ray Tune's searcher interface (see the module docstring).
    ``storage_url`` is the study's database (the run folder's); None keeps it in memory."""

    def __init__(self, genes: list[Gene], space: SpaceConfig, directions: dict[str, str],
                 constraint: Constraint, storage_url: str | None) -> None:
        super().__init__(metric=list(directions), mode=list(directions.values()))
        assert constraint.objective == next(iter(directions)), (constraint, directions)
        self.constraint = constraint
        self._labels = {g.name: list(g.labels) for g in genes}
        self._distributions = {name: optuna.distributions.CategoricalDistribution(labels)
                               for name, labels in self._labels.items()}
        self._space_size = math.prod(len(v) for v in self._labels.values())
        self._seed = space.seed
        self._trials: dict[str, optuna.Trial] = {}  # Ray trial id -> running Optuna trial
        self._seen: set[tuple[tuple[str, str], ...]] = set()  # genomes proposed so far
        self._baseline_id: str | None = None
        self._baseline_done = False
        self._baseline_value: float | None = None
        self._held: dict[str, tuple[dict, bool]] = {}  # ended before the baseline
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(
            storage=storage_url, sampler=make_sampler(space, genes), study_name=STUDY_NAME,
            directions=["maximize" if m == "max" else "minimize" for m in directions.values()],
            load_if_exists=True)
        if not self._study.trials:
            self._study.enqueue_trial(baseline_params(genes))

    @property
    def study(self) -> optuna.Study:
        return self._study

    @property
    def baseline_trial_id(self) -> str | None:
        return self._baseline_id

    # -- Ray's Searcher interface --------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self._study.ask(self._distributions)
        if self._baseline_id is None:
            self._baseline_id = trial_id  # the first ask pops the enqueued baseline
        if _key(trial.params) in self._seen and len(self._seen) < self._space_size:
            trial.set_user_attr(DUPLICATE, True)
            self._study.tell(trial, state=TrialState.FAIL)
            replacement = unseen_genome(self._labels, self._seen,
                                        f"{self._seed}-{len(self._seen)}")
            if replacement is not None:
                self._study.enqueue_trial(replacement)
            trial = self._study.ask(self._distributions)
        self._seen.add(_key(trial.params))
        trial.set_user_attr(TRIAL_ID, trial_id)
        self._trials[trial_id] = trial
        return dict(trial.params)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        result = result or {}
        if trial_id == self._baseline_id:
            self._baseline_done = True
            self._baseline_value = None if error else result.get(self.constraint.objective)
            self._tell(trial_id, result, error)
            held, self._held = self._held, {}
            for held_id, (held_result, held_error) in held.items():
                self._tell(held_id, held_result, held_error)
        elif not self._baseline_done and trial_id in self._trials:
            self._held[trial_id] = (result, error)  # told once the baseline has been
        else:
            self._tell(trial_id, result, error)

    def _tell(self, trial_id: str, result: dict, error: bool) -> None:
        first = None if error else result.get(self.constraint.objective)
        trial = self._trials.pop(trial_id, None)
        if trial is None:
            return  # told already
        values = [result.get(name) for name in self.metric]
        state, constraints = TrialState.COMPLETE, {}
        if error:
            state = TrialState.FAIL
        elif any(v is None for v in values):  # stopped early: no final measurements
            state = TrialState.PRUNED
        else:
            limit = self.constraint.max_worsening
            if limit is not None and self._baseline_value is not None:
                worse = self.constraint.worsening(float(first), self._baseline_value)
                constraints[CONSTRAINT] = worse - limit
        told = [float(v) for v in values] if state == TrialState.COMPLETE else None
        finished = {t.number: t for t in self._study.get_trials(deepcopy=False,
                                                                states=_FINISHED)}
        if trial.number not in finished:
            for key, value in constraints.items():
                trial.set_constraint(key, value)
            self._study.tell(trial, told, state=state)
        elif str(trial.number) in self._study.user_attrs.get(INTERRUPTED, {}):
            old = finished[trial.number]  # its sampler attrs (e.g. NSGA-II's generation) carry
            self._study.add_trial(optuna.trial.create_trial(
                state=state, values=told, params=dict(old.params),
                distributions=self._distributions, constraints=constraints or None,
                system_attrs=dict(old.system_attrs),
                user_attrs={TRIAL_ID: trial_id, RESUMES: trial.number}))
        # else: told before the driver was killed; Ray's older snapshot re-ran it

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
