"""Finish a search: the results table from Ray's experiment state, the front and its files,
front weights, Optuna and MLflow made consistent, the prunable-components report.

Ray's experiment state (the run folder's ``tune/``) is the authority on which trials exist: a
trial that started after Ray's last snapshot and before a driver kill does not exist for the
restored search. Its Optuna trial, left RUNNING, is told FAIL (``study.tell``) and its number
and reason are kept in the run folder's settings (``orphans``); its MLflow run is deleted.
Everything is computed here from objects in memory and written once. With ``strategy:
multifidelity`` the table, the front, the counts and MLflow's states are per genome (its jobs
folded, :func:`~minsearch.search.multifidelity.genome_records`), and the search is finished
when its searcher said so (:func:`halving_finished`).

A search stopped by Ctrl-C or SIGTERM (``interrupted``) closes its books the same way, with the
trials that were in flight ending in one state everywhere: ``INTERRUPTED`` in ``results.csv``
and ``trials.json``; FAIL in the Optuna study, listed in its user attribute
``minsearch_interrupted`` (never COMPLETE, never left RUNNING); ``KILLED`` in MLflow (tag
``state=INTERRUPTED``); status ``interrupted`` in ``search.json``. ``minsearch resume``
continues them from their last checkpoints, and the searcher tells Optuna each one's outcome
as a new trial (:class:`~minsearch.search.searcher.GenomeSearcher`).

A trial that ended before the baseline is *held* by the searcher (its Optuna trial still
RUNNING: its worsening needs the baseline's value). A stop before the baseline ends leaves it
untold, so it is ``INTERRUPTED`` everywhere too (reason :data:`HELD_REASON`), though Ray has it
finished and never trains it again: the resumed searcher, restored with what it held, tells it
once the baseline ends, and the resumed search's books say COMPLETE (or FAILED) again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import pandas as pd

from minsearch.search.multifidelity import genome_records
from minsearch.search.plan import Plan
from minsearch.search.results import (
    TrialRecord,
    front_summary,
    record_from_result,
    results_frame,
    trial_number,
)
from minsearch.search.run_dir import RunDir

ORPHAN_REASON = "orphaned: started after the last experiment snapshot before the driver died"
INTERRUPTED_REASON = "interrupted (Ctrl-C or SIGTERM); `minsearch resume` continues it"
HELD_REASON = ("finished before the baseline and not yet told to Optuna when the search was "
               "stopped; `minsearch resume` tells it once the baseline ends")


@dataclass(frozen=True)
class Outcome:
    """What a finished (or interrupted) search left: its folder, results and front summary."""

    run: RunDir
    frame: pd.DataFrame
    summary: dict[str, Any]


def collect_records(plan: Plan) -> list[TrialRecord]:
    """One record per trial Ray knows, in creation order."""
    from ray.tune import ExperimentAnalysis

    if not plan.tune.saved:
        return []
    path, where = plan.tune.restore_args()
    trials = ExperimentAnalysis(path, **where).trials
    records = []
    for trial in trials:
        params = {g: str(trial.config.get(g, "")) for g in plan.gene_names}
        if trial.status in ("TERMINATED", "ERROR"):
            error = trial.status == "ERROR"
            checkpoint = plan.tune.checkpoint_location(
                trial.checkpoint.path if trial.checkpoint is not None else "")
            record = record_from_result(trial.trial_id, params, dict(trial.last_result or {}),
                                        error, list(plan.directions), checkpoint,
                                        (trial.get_error() or "") if error else "")
        else:
            record = TrialRecord(trial.trial_id, params,
                                 state="RUNNING" if trial.status == "RUNNING" else "PENDING")
        record.number = trial_number(trial.experiment_tag)
        records.append(record)
    records.sort(key=lambda r: r.number)
    for record in records:  # the baseline runs first; a later all-keep proposal is a trial
        if record.params == plan.baseline:
            record.baseline = True
            break
    return records


def _export_front(plan: Plan, frame: pd.DataFrame) -> None:
    """Weights of every front member, to ``RunDir.export_path`` (see ``export``)."""
    from minsearch.search.export import export_row

    shutil.rmtree(plan.run.front_dir, ignore_errors=True)
    for _, row in frame[frame["pareto"]].iterrows():
        export_row(plan, row, plan.run.export_path(str(row["trial_id"])))


def told_trials(plan: Plan) -> frozenset[str]:
    """Ray trial ids whose outcome the study holds: a finished Optuna trial that a stop did not
    end (an interrupted one counts once its resumed outcome was added). Not among them: trials
    in flight, and trials the searcher holds until the baseline ends, even across stops."""
    from minsearch.search.searcher import DUPLICATE, INTERRUPTED, TRIAL_ID

    study = plan.run.load_study()
    if study is None:
        return frozenset()
    stopped = study.user_attrs.get(INTERRUPTED, {})
    return frozenset(str(t.user_attrs.get(TRIAL_ID)) for t in study.get_trials(deepcopy=False)
                     if t.state.is_finished() and not t.user_attrs.get(DUPLICATE)
                     and str(t.number) not in stopped)


def reconcile_study(plan: Plan, interrupted: frozenset[str] = frozenset(), *,
                    tell: bool = True) -> dict[str, int]:
    """Tell FAIL to study trials left RUNNING: those of the Ray trials ``interrupted`` (ids)
    listed in the study's user attribute ``minsearch_interrupted`` ({number: Ray trial id}),
    the others as orphans (recorded in the settings); return the study's trial counts: by
    state, with duplicates skipped, orphans and interrupted trials counted apart.
    ``tell=False`` (a multi-fidelity search stopped before its searcher finished): every
    genome whose screening (rung 0) has not finished is still in the search and stays
    RUNNING, told by the resumed searcher (when its rung 0 ends, or PRUNED when the search
    ends)."""
    import optuna

    from minsearch.search.searcher import DUPLICATE, INTERRUPTED, TRIAL_ID

    study = plan.run.load_study()
    if study is None:
        return {}
    orphans = dict(plan.settings.orphans)
    stopped = dict(study.user_attrs.get(INTERRUPTED, {}))
    running = (optuna.trial.TrialState.RUNNING,) if tell else ()
    for trial in study.get_trials(deepcopy=False, states=running):
        ray_id = trial.user_attrs.get(TRIAL_ID)
        if ray_id in interrupted:
            stopped[str(trial.number)] = ray_id
            study.set_user_attr(INTERRUPTED, stopped)  # before the tell: resume reads it
        else:
            orphans[str(trial.number)] = ORPHAN_REASON
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    plan.save_settings(orphans=orphans)
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if str(trial.number) in orphans:
            key = "orphaned"
        elif trial.user_attrs.get(DUPLICATE):
            key = "duplicate_skipped"
        elif str(trial.number) in stopped:
            key = "interrupted"
        else:
            key = trial.state.name
        counts[key] = counts.get(key, 0) + 1
    return counts


def halving_finished(plan: Plan) -> bool:
    """Whether a multi-fidelity search's searcher said FINISHED (its study records it)."""
    from minsearch.search.halving_searcher import FINISHED_ATTR

    study = plan.run.load_study()
    return bool(study is not None and study.user_attrs.get(FINISHED_ATTR))


def finish_search(plan: Plan, *, interrupted: bool = False) -> Outcome:
    """Write every result file and close the books; ``interrupted``: the driver was stopped
    (see the module docstring)."""
    from minsearch.search.plot import plot_front
    from minsearch.search.report import write_plan_report
    from minsearch.tracking import SearchTracker

    run, halving = plan.run, plan.halving
    records = collect_records(plan)
    told = told_trials(plan) if interrupted and halving is None else frozenset()
    stopped = frozenset(r.trial_id for r in records if interrupted and (
        r.state in ("RUNNING", "PENDING") or (halving is None and r.trial_id not in told)))
    for record in records:
        if record.trial_id in stopped:
            in_flight = record.state in ("RUNNING", "PENDING")
            record.state = "INTERRUPTED"
            record.reason = INTERRUPTED_REASON if in_flight else HELD_REASON
    if stopped:
        run.write_records(records)  # trials.json says what results.csv says
    genomes = genome_records(records, halving)  # per genome with strategy: multifidelity
    frame = results_frame(genomes, plan.gene_names, plan.directions, plan.constraint)
    summary = front_summary(frame, plan.directions)
    states = {r.trial_id: r.state for r in genomes}
    counts = {s: list(states.values()).count(s) for s in ("COMPLETE", "FAILED", "PRUNED")}
    finished = sum(counts.values()) == plan.space.trials and len(records) == plan.space.trials
    if halving is not None:  # its searcher says when it is over
        finished = halving_finished(plan) and sum(counts.values()) == len(genomes)
        summary["jobs"] = len(records)
    summary["counts"] = counts
    summary["optuna"] = reconcile_study(plan, stopped, tell=halving is None or finished)
    run.write_results(frame, summary)
    artifacts = [run.results_csv, run.front_csv, run.front_json]
    if not frame.empty and (finished or not interrupted):  # a stopped driver exits fast
        png = plot_front(frame, plan.directions, plan.constraint, run.front_png)
        artifacts += [png] if png else []
        _export_front(plan, frame)
        artifacts.append(write_plan_report(plan, frame))
    tracker = None  # none before tracking started (stopped while training the parent)
    if run.tracking.state.is_file():
        tracker = SearchTracker.open(run.tracking, plan.settings.tracking_uri)
    if tracker is not None and tracker.parent_id is not None:
        metrics = {f"trials_{k.lower()}": v for k, v in counts.items()}
        if summary.get("hypervolume") is not None:
            metrics["hypervolume"] = summary["hypervolume"]
        tracker.finish_search(states, summary["front"], metrics, artifacts,
                              "FINISHED" if finished else "KILLED")
    status = "finished" if finished else "interrupted" if interrupted else "incomplete"
    plan.save_settings(status=status, counts=counts)
    return Outcome(run, frame, summary)
