"""Finish a search: the results table from Ray's experiment state, the front and its files,
front weights, Optuna and MLflow made consistent, the prunable-components report.

Ray's experiment state (the run folder's ``tune/``) is the authority on which trials exist: a
trial that started after Ray's last snapshot and before a driver kill does not exist for the
restored search. Its Optuna trial, left RUNNING, is told FAIL (``study.tell``) and its number
and reason are kept in the run folder's settings (``orphans``); its MLflow run is deleted.
Everything is computed here from objects in memory and written once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import pandas as pd

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


@dataclass(frozen=True)
class Outcome:
    """What a finished (or interrupted) search left: its folder, results and front summary."""

    run: RunDir
    frame: pd.DataFrame
    summary: dict[str, Any]


def collect_records(plan: Plan) -> list[TrialRecord]:
    """One record per trial Ray knows, in creation order."""
    from ray.tune import ExperimentAnalysis

    if not plan.run.tune_dir.is_dir():
        return []
    trials = ExperimentAnalysis(str(plan.run.tune_dir.resolve())).trials
    records = []
    for trial in trials:
        params = {g: str(trial.config.get(g, "")) for g in plan.gene_names}
        if trial.status in ("TERMINATED", "ERROR"):
            error = trial.status == "ERROR"
            checkpoint = trial.checkpoint.path if trial.checkpoint is not None else ""
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


def reconcile_study(plan: Plan) -> dict[str, int]:
    """Tell FAIL to study trials left RUNNING (orphans; recorded in the settings); return the
    study's trial counts: by state, with duplicates skipped and orphans counted apart."""
    import optuna

    from minsearch.search.searcher import DUPLICATE

    study = plan.run.load_study()
    if study is None:
        return {}
    orphans = dict(plan.settings.orphans)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        orphans[str(trial.number)] = ORPHAN_REASON
    plan.save_settings(orphans=orphans)
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if str(trial.number) in orphans:
            key = "orphaned"
        elif trial.user_attrs.get(DUPLICATE):
            key = "duplicate_skipped"
        else:
            key = trial.state.name
        counts[key] = counts.get(key, 0) + 1
    return counts


def finish_search(plan: Plan) -> Outcome:
    """Write every result file and close the books."""
    from minsearch.search.plot import plot_front
    from minsearch.search.report import build_report, render_markdown
    from minsearch.tracking import SearchTracker

    run = plan.run
    records = collect_records(plan)
    frame = results_frame(records, plan.gene_names, plan.directions, plan.constraint)
    summary = front_summary(frame, plan.directions)
    states = {r.trial_id: r.state for r in records}
    counts = {s: list(states.values()).count(s) for s in ("COMPLETE", "FAILED", "PRUNED")}
    summary["counts"] = counts
    summary["optuna"] = reconcile_study(plan)
    run.write_results(frame, summary)
    artifacts = [run.results_csv, run.front_csv, run.front_json]
    if not frame.empty:
        png = plot_front(frame, plan.directions, plan.constraint, run.front_png)
        artifacts += [png] if png else []
        _export_front(plan, frame)
        report = build_report(frame, plan.genes, plan.directions, plan.constraint,
                              run.load_study())
        artifacts.append(run.write_report(report, render_markdown(report)))
    finished = sum(counts.values()) == plan.space.trials and len(records) == plan.space.trials
    tracker = SearchTracker.open(run.tracking, plan.settings.tracking_uri)
    if tracker.parent_id is not None:
        metrics = {f"trials_{k.lower()}": v for k, v in counts.items()}
        if summary.get("hypervolume") is not None:
            metrics["hypervolume"] = summary["hypervolume"]
        tracker.finish_search(states, summary["front"], metrics, artifacts,
                              "FINISHED" if finished else "KILLED")
    plan.save_settings(status="finished" if finished else "incomplete", counts=counts)
    return Outcome(run, frame, summary)
