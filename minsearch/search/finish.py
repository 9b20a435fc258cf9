"""Finish a search: the results table from Ray's experiment state, the front and its files,
front weights, Optuna and MLflow made consistent, the prunable-components report.

Ray's experiment state (``RUN_DIR/tune``) is the authority on which trials exist: a trial that
started after Ray's last snapshot and before a driver kill does not exist for the restored
search, so its Optuna trial (left RUNNING) is told FAIL with the reason, and its MLflow run is
deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from minsearch.search.plan import Plan
from minsearch.search.results import (
    TrialRecord,
    front_summary,
    record_from_result,
    results_frame,
    trial_number,
    write_results,
)

ORPHAN_REASON = "orphaned: started after the last experiment snapshot before the driver died"


def collect_records(plan: Plan) -> list[TrialRecord]:
    """One record per trial Ray knows, in creation order."""
    from ray.tune import ExperimentAnalysis

    tune_dir = plan.run_dir / "tune"
    if not tune_dir.is_dir():
        return []
    trials = ExperimentAnalysis(str(tune_dir.resolve())).trials
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


def _export_front(plan: Plan, frame) -> list[Path]:
    """Weights of every front member: ``RUN_DIR/front/<trial_id>.pt`` (see ``export``)."""
    from minsearch.search.export import export_trial

    out = plan.run_dir / "front"
    shutil.rmtree(out, ignore_errors=True)
    return [export_trial(plan.run_dir, str(trial_id), out / f"{trial_id}.pt")
            for trial_id in frame.loc[frame["pareto"], "trial_id"]]


def _reconcile_optuna(plan: Plan) -> dict[str, int]:
    """Tell FAIL to study trials left RUNNING (orphans); return the study's state counts."""
    import optuna

    from minsearch.search.plan import STUDY_NAME, storage_url

    if not (plan.run_dir / "optuna.db").is_file():
        return {}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(plan.run_dir))
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, "minsearch_orphan", ORPHAN_REASON)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("minsearch_orphan"):
            key = "orphaned"
        elif trial.user_attrs.get("minsearch_duplicate"):
            key = "duplicate_skipped"
        else:
            key = trial.state.name
        counts[key] = counts.get(key, 0) + 1
    return counts


def finish_search(plan: Plan) -> dict[str, Any]:
    """Write every result file and close the books; returns the front summary."""
    from minsearch.report import write_report
    from minsearch.search.plot import plot_front
    from minsearch.tracking import SearchTracker

    records = collect_records(plan)
    directions = plan.directions
    drop = plan.task.measure.max_worsening
    frame = results_frame(records, plan.gene_names, directions, drop)
    summary = front_summary(frame, directions)
    states = {r.trial_id: r.state for r in records}
    counts = {s: list(states.values()).count(s) for s in ("COMPLETE", "FAILED", "PRUNED")}
    summary["counts"] = counts
    summary["optuna"] = _reconcile_optuna(plan)
    write_results(plan.run_dir, frame, summary)
    artifacts = [plan.run_dir / n for n in ("results.csv", "front.csv", "front.json")]
    if not frame.empty:
        png = plot_front(frame, directions, plan.run_dir / "front.png")
        artifacts += [png] if png else []
        _export_front(plan, frame)
        artifacts.append(write_report(plan.run_dir))
    finished = sum(counts.values()) == plan.space.trials and len(records) == plan.space.trials
    tracker = SearchTracker.open(plan.run_dir, plan.settings.get("tracking_uri"))
    if tracker.parent_id is not None:
        metrics = {f"trials_{k.lower()}": v for k, v in counts.items()}
        if summary.get("hypervolume") is not None:
            metrics["hypervolume"] = summary["hypervolume"]
        tracker.finish_search(states, summary["front"], metrics, artifacts,
                              "FINISHED" if finished else "KILLED")
    plan.save_settings(status="finished" if finished else "incomplete", counts=counts)
    return summary
