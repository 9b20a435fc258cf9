"""``strategy: multifidelity`` in a space file: its keys, its :class:`HalvingConfig`, and the
per-genome view of its trials.

A space file opts in with::

    strategy: multifidelity
    trials: 24                # genomes screened at most (the baseline included)
    rungs:                    # budget increasing; the last is the task's full `epochs`
      - {epochs: 1, seeds: 1}
      - {epochs: 4, seeds: 1, slack: 0.05}
      - {epochs: 4, seeds: 3}
    reduction: 3              # a rung's best 1/3 may go up (default 3)
    budget_epochs: 200        # optional: epoch-trainings the search may spend

The rule is :mod:`minsearch.search.promotion`'s; :class:`~minsearch.search.halving_searcher.
HalvingSearcher` runs it, one Ray trial per job. A genome therefore spans several Ray trials
(its screening and each promotion): :func:`genome_records` folds their records into one
record per genome, and the results table, the front, the report and MLflow are built from
those, with the rung each genome reached (extra columns ``rung``, ``jobs``). In them only
genomes at the top rung are COMPLETE, with their top-rung means over the top rung's seeds;
the others are PRUNED ("stopped at rung r"), so early values never reach the front. The
Optuna study is another matter: its sampler was told each genome's rung-0 (screening) values
(see :mod:`~minsearch.search.halving_searcher`), so nothing reads final values from it; its
importances say so (:func:`importance_note`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from minsearch.errors import UserError
from minsearch.search.promotion import HalvingConfig, Rung
from minsearch.search.results import TrialRecord

if TYPE_CHECKING:
    from minsearch.objectives.constraint import Constraint
    from minsearch.search.space import SpaceConfig
    from minsearch.tasks.config import TaskConfig

STRATEGIES = ("default", "multifidelity")
STRATEGY_KEYS = ("strategy", "rungs", "reduction", "budget_epochs")
RUNG_KEYS = ("epochs", "seeds", "slack")
_STILL = ("INTERRUPTED", "RUNNING", "PENDING")  # a genome with such a job is not done


def _rung(spec: Any) -> Rung:
    example = "{epochs: 1, seeds: 1}"
    if isinstance(spec, Rung):
        return spec
    if not isinstance(spec, Mapping) or "epochs" not in spec:
        raise UserError(f"Each rung must be a mapping such as {example}, but got {spec!r}.")
    extra = sorted(set(spec) - set(RUNG_KEYS))
    if extra:
        raise UserError(f"Unknown rung key(s) {extra} in {dict(spec)!r}; known: "
                        f"{', '.join(RUNG_KEYS)}.")
    epochs, seeds, slack = spec["epochs"], spec.get("seeds", 1), spec.get("slack", 0.0)
    for name, value in (("epochs", epochs), ("seeds", seeds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"A rung's `{name}` must be an int >= 1, but got {value!r} in "
                            f"{dict(spec)!r}.")
    if not isinstance(slack, (int, float)) or isinstance(slack, bool) or slack < 0:
        raise UserError(f"A rung's `slack` must be a number >= 0, but got {slack!r} in "
                        f"{dict(spec)!r}.")
    return Rung(epochs, seeds, float(slack))


def parse_strategy(data: Mapping[str, Any]) -> dict[str, Any]:
    """The space file's rungs as :class:`Rung` s (the other strategy keys pass as they are)."""
    rungs = data.get("rungs")
    if rungs is None:
        return {}
    if not isinstance(rungs, list):
        raise UserError(f"`rungs` must be a list such as [{{epochs: 1, seeds: 1}}, {{epochs: "
                        f"4, seeds: 2}}], but got {rungs!r}.")
    return {"rungs": tuple(_rung(r) for r in rungs)}


def check_strategy(space: SpaceConfig) -> None:
    """The strategy keys of ``space`` on their own (against the task: :func:`halving_config`)."""
    if space.strategy not in STRATEGIES:
        raise UserError(f"`strategy` must be one of {', '.join(STRATEGIES)}, but got "
                        f"{space.strategy!r}.")
    object.__setattr__(space, "rungs", tuple(_rung(r) for r in space.rungs))
    if space.strategy == "default":
        given = [k for k, v in (("rungs", space.rungs), ("budget_epochs", space.budget_epochs))
                 if v] + (["reduction"] if space.reduction != 3.0 else [])
        if given:
            raise UserError(f"`{given[0]}` is a key of `strategy: multifidelity`, but the "
                            f"strategy is `default`; add `strategy: multifidelity` or remove "
                            f"`{given[0]}`.")
        return
    if not space.rungs:
        raise UserError("`strategy: multifidelity` needs `rungs`, e.g. [{epochs: 1, seeds: "
                        "1}, {epochs: 4, seeds: 2}] (the last: the task's `epochs`).")
    if space.asha_grace_epochs is not None:
        raise UserError(f"`asha_grace_epochs: {space.asha_grace_epochs}` and `strategy: "
                        f"multifidelity` both stop weak candidates early; remove one.")
    if not isinstance(space.reduction, (int, float)) or space.reduction <= 1:
        raise UserError(f"`reduction` must be a number > 1 (3 promotes a third), but got "
                        f"{space.reduction!r}.")
    budget = space.budget_epochs
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise UserError(f"`budget_epochs` must be an int >= 1 or null, but got {budget!r}.")


def without_strategy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A space file's mapping with the multi-fidelity keys removed: the same genes and sampler
    as a ``strategy: default`` search (benchmarks that time one Ray trial per genome)."""
    return {k: v for k, v in data.items() if k not in STRATEGY_KEYS}


def strategy_json(space: SpaceConfig) -> dict[str, Any]:
    """The strategy keys for the run folder's ``space.yaml`` (none for the default)."""
    if space.strategy == "default":
        return {}
    return {"strategy": space.strategy, "reduction": space.reduction,
            "budget_epochs": space.budget_epochs,
            "rungs": [{"epochs": r.epochs, "seeds": r.seeds, "slack": r.slack}
                      for r in space.rungs]}


def halving_config(space: SpaceConfig, task: TaskConfig, directions: Mapping[str, str],
                   constraint: Constraint) -> HalvingConfig | None:
    """The promotion rule's configuration (None for the default strategy). The rungs count
    the task's rounds (epochs for an ``epochs:`` budget); the top rung must be the task's whole
    budget, so that every job trains on the same learning-rate schedule; the seeds are the
    task's ``seeds``."""
    if space.strategy != "multifidelity":
        return None
    rounds, seeds = task.recipe.rounds, task.recipe.seed_list
    top = space.rungs[-1]
    if top.epochs != rounds:
        raise UserError(f"The top rung trains {top.epochs} epochs but the task trains "
                        f"{rounds} (`epochs`); make the last rung's `epochs: {rounds}` (the "
                        f"full budget the front is read from).")
    try:
        return HalvingConfig(space.rungs, tuple(directions.values()), constraint,
                             float(space.reduction), tuple(seeds))
    except ValueError as err:
        raise UserError(f"{err} (the seeds are the task's `seeds: {len(seeds)}`)") from None


# -- one record per genome ----------------------------------------------------------------


def _values(jobs: Sequence[TrialRecord]) -> dict[tuple[int, int], dict[str, float]]:
    """``{(seed, epoch): {objective: value}}`` over every finished job of one genome."""
    merged: dict[tuple[int, int], dict[str, float]] = {}
    for job in jobs:
        for seed, by_epoch in job.rung_values.items():
            for epoch, row in by_epoch.items():
                merged[(int(seed), int(epoch))] = dict(row)
    return merged


def _reached(config: HalvingConfig, values: Mapping[tuple[int, int], Any]) -> int:
    """The highest rung whose seeds all have values at its epochs (-1: none)."""
    reached = -1
    for index, rung in enumerate(config.rungs):
        if all((s, rung.epochs) in values for s in config.rung_seeds(index)):
            reached = index
    return reached


def _fold(config: HalvingConfig, jobs: list[TrialRecord], number: int) -> TrialRecord:
    first, last = jobs[0], jobs[-1]
    values = _values(jobs)
    reached = _reached(config, values)
    record = TrialRecord(first.trial_id, dict(first.params), number=number,
                         baseline=first.baseline, genome=last.genome or first.genome)
    for key in ("node", "node_ip", "worker_pid", "gpus", "ended_at", "held_out"):
        setattr(record, key, getattr(last, key))
    record.started_at = first.started_at
    record.seconds = sum(j.seconds for j in jobs)
    trained: dict[int, int] = {}
    for seed, epoch in values:
        trained[seed] = max(trained.get(seed, 0), epoch)
    record.epochs = sum(trained.values())  # epoch-trainings measured
    record.extras = {"rung": float(reached), "jobs": float(len(jobs))}
    states = [j.state for j in jobs]
    costs = next((j.objectives for j in reversed(jobs) if j.objectives), {})
    if "FAILED" in states:
        record.state = "FAILED"
        record.reason = jobs[states.index("FAILED")].reason
    elif reached == config.top:
        top = config.rungs[-1].epochs
        seeds = list(config.rung_seeds(config.top))
        rows = [values[(s, top)] for s in seeds]
        record.state, record.seeds = "COMPLETE", seeds
        record.objectives = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        record.per_seed = {k: [float(r[k]) for r in rows] for k in rows[0] if k not in costs}
        done = [j for j in jobs if j.checkpoint and j.rung_values]
        record.checkpoint = done[-1].checkpoint if done else ""
    elif any(s in states for s in _STILL):
        record.state = next(s for s in _STILL if s in states)
        record.reason = next((j.reason for j in jobs if j.state == record.state), "")
    elif any(j.reason.startswith("over budget") for j in jobs):
        record.state, record.reason = "PRUNED", next(
            j.reason for j in jobs if j.reason.startswith("over budget"))
    else:
        record.state = "PRUNED"
        if reached < 0:
            record.reason = "not screened: the search ended before its first rung"
        else:
            rung = config.rungs[reached]
            record.reason = (f"stopped at rung {reached} ({rung.epochs} epochs x {rung.seeds} "
                             f"seeds): not promoted")
    return record


def genome_records(records: Sequence[TrialRecord], config: HalvingConfig | None
                   ) -> list[TrialRecord]:
    """One record per genome from the records of its jobs (Ray trials), numbered 1, 2, ...
    in the order the genomes started; its trial id is that of its first job (the one that
    asked Optuna, and the key of its MLflow run). ``config`` None (the default strategy):
    ``records`` as they are."""
    if config is None:
        return list(records)
    groups: dict[str, list[TrialRecord]] = {}
    for record in sorted(records, key=lambda r: r.number):
        groups.setdefault(json.dumps(record.params, sort_keys=True), []).append(record)
    return [_fold(config, jobs, number) for number, jobs in enumerate(groups.values(), 1)]


def importance_note(config: HalvingConfig | None, study: Any) -> str | None:
    """The report's one sentence on what the importances of a multi-fidelity search rest on
    (None for the default strategy, whose study holds every trial's final values)."""
    if config is None or study is None:
        return None
    rung = config.rungs[0]
    told = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    return (f"These rest on the screening rung: Optuna was told {told} genomes' values after "
            f"{rung.epochs} epoch(s) x {rung.seeds} seed(s), not the full-budget means above.")


def genome_key(records: Mapping[str, TrialRecord], params: Mapping[str, str],
               trial_id: str) -> str:
    """The trial id a genome is known by (its first job's) among ``records``."""
    same = [r for r in records.values() if r.params == dict(params)]
    return min(same, key=lambda r: (r.number, r.trial_id)).trial_id if same else trial_id
