"""MLflow tracking: the search is a parent run, each trial a nested child run.

The only module that imports ``mlflow``; it is used from the search driver only (one writer
for the SQLite store). Every child run carries the tag ``minsearch.trial_id``; the mapping
trial -> run is kept in a state file (:class:`TrackingFiles`, given by the run folder) and can
always be rebuilt from those tags (:func:`recover_state`), so a
resumed search reopens a trial's run instead of opening a second one (the trap of Ray's own
MLflow callback). :meth:`SearchTracker.finish_search` reconciles: runs of trials that the
restored search no longer knows (started after Ray's last snapshot, before a kill) are deleted,
every other child run ends with its trial's state.

Default tracking URI: a SQLite store in the run folder, with artifacts beside it
(:attr:`TrackingFiles.default_uri`); any URI MLflow accepts can be given instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from minsearch.errors import UserError

# Set after importing mlflow (it sets its own level on import): no table-creation chatter.
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

TRIAL_TAG = "minsearch.trial_id"
RUN_DIR_TAG = "minsearch.run_dir"  # on the parent run: the run folder
PARENT_TAG = "mlflow.parentRunId"
_END = {"COMPLETE": "FINISHED", "FAILED": "FAILED", "PRUNED": "KILLED", "INTERRUPTED": "KILLED"}


@dataclass(frozen=True)
class TrackingFiles:
    """Where one search keeps its MLflow state (``RunDir.tracking`` gives them)."""

    folder: Path  # the run folder, tagged on the parent run
    state: Path  # JSON: tracking URI, experiment, parent run, trial id -> run id
    store: Path  # the default SQLite store
    artifacts: Path  # artifacts of the default store

    @property
    def default_uri(self) -> str:
        return f"sqlite:///{Path(self.store).resolve()}"


def clean_key(key: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / space``; ``norm@blocks.0`` ->
    ``norm/blocks.0``."""
    return re.sub(r"[^\w\-./ ]", "_", key.replace("@", "/"))


_OPEN: dict[tuple[str, str | None], SearchTracker] = {}


class SearchTracker:
    """Parent and child runs of one search. Use :meth:`open` in the driver: one instance per
    run folder and process (building an MLflow client on SQLite costs seconds)."""

    @classmethod
    def open(cls, files: TrackingFiles, tracking_uri: str | None = None) -> SearchTracker:
        key = (str(Path(files.state).resolve()), tracking_uri)
        if key not in _OPEN:
            _OPEN[key] = cls(files, tracking_uri)
        return _OPEN[key]

    def __init__(self, files: TrackingFiles, tracking_uri: str | None = None,
                 experiment: str = "minsearch") -> None:
        os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

        self.files = files
        self.state_path = Path(files.state)
        state = read_state(self.state_path) if self.state_path.is_file() else {}
        self.tracking_uri = tracking_uri or state.get("tracking_uri") or files.default_uri
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = state.get("experiment_id") or self._experiment(experiment)
        self.parent_id: str | None = state.get("parent_run_id")
        self.trials: dict[str, str] = dict(state.get("trials", {}))

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.tracking_uri.startswith("sqlite:"):
            location = Path(self.files.artifacts).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def _save(self) -> None:
        _write_state(self.state_path, self.tracking_uri, self.experiment_id, self.parent_id,
                     self.trials)

    # -- the search ------------------------------------------------------------------------

    def start_search(self, name: str, params: dict[str, Any]) -> str:
        """Create the parent run, or reopen it when resuming."""
        if self.parent_id is None:
            run = self.client.create_run(self.experiment_id, run_name=name,
                                         tags={RUN_DIR_TAG: str(self.files.folder)})
            self.parent_id = run.info.run_id
            for key, value in params.items():
                self.client.log_param(self.parent_id, clean_key(key), str(value)[:6000])
            self._save()
        else:
            self.client.update_run(self.parent_id, status="RUNNING")
        return self.parent_id

    def finish_search(self, states: dict[str, str], front: list[str], metrics: dict[str, float],
                      artifacts: list[Path], status: str = "FINISHED") -> None:
        """Tag front members, end or delete child runs per ``states`` ({trial id: state}),
        log summary metrics and artifacts on the parent, and end it."""
        assert self.parent_id is not None, "start_search must run first"
        for trial_id, run_id in self._children().items():
            if trial_id not in states:
                self.client.delete_run(run_id)  # orphan: its trial no longer exists
                self.trials.pop(trial_id, None)
                continue
            self.client.set_tag(run_id, "pareto", str(trial_id in front).lower())
            end = _END.get(states[trial_id])
            if end and self.client.get_run(run_id).info.status != end:
                self.client.set_tag(run_id, "state", states[trial_id])
                self.client.set_terminated(run_id, end)
        for key, value in metrics.items():
            self.client.log_metric(self.parent_id, clean_key(key), float(value))
        for path in artifacts:
            if Path(path).is_file():
                self.client.log_artifact(self.parent_id, str(path))
        self.client.set_terminated(self.parent_id, status)
        self._save()

    def _children(self) -> dict[str, str]:
        runs = self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
                                       max_results=10_000)
        found = {r.data.tags[TRIAL_TAG]: r.info.run_id for r in runs if TRIAL_TAG in r.data.tags}
        self.trials.update(found)
        return found

    # -- trials ----------------------------------------------------------------------------

    def trial_run(self, trial_id: str, params: dict[str, str]) -> str:
        """The child run of ``trial_id``: reopened if it exists (RUNNING again when a stopped
        driver ended it KILLED), created otherwise."""
        if trial_id in self.trials:
            run_id = self.trials[trial_id]
            if self.client.get_run(run_id).info.status == "KILLED":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        existing = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                                                f"tags.`{PARENT_TAG}` = '{self.parent_id}'")
        if existing:
            run_id = existing[0].info.run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}",
                                         tags={PARENT_TAG: self.parent_id, TRIAL_TAG: trial_id})
            run_id = run.info.run_id
            self.client.log_batch(run_id, params=[Param(clean_key(k), str(v))
                                                  for k, v in params.items()])
        self.trials[trial_id] = run_id
        self._save()
        return run_id

    def log_metrics(self, trial_id: str, metrics: dict[str, float], step: int | None = None
                    ) -> None:
        run_id = self.trials.get(trial_id)
        if run_id is None or not metrics:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(clean_key(k), float(v), now, step or 0)
                                               for k, v in metrics.items()])  # one transaction

    def end_trial(self, trial_id: str, state: str, objectives: dict[str, float],
                  extras: dict[str, float], genome: str = "", reason: str = "",
                  tags: dict[str, str] | None = None,
                  per_seed: dict[str, dict[int, float]] | None = None) -> None:
        """End a child run; ``tags``: more tags for it (e.g. the node that ran the trial);
        ``per_seed``: ``{objective: {seed: value}}``, logged as the metric
        ``<objective>_per_seed`` with the seed as its step."""
        run_id = self.trials.get(trial_id)
        if run_id is None:
            return
        self.log_metrics(trial_id, {**objectives, **extras})
        now = int(time.time() * 1000)
        seeds = [Metric(clean_key(f"{name}_per_seed"), float(v), now, int(seed))
                 for name, values in (per_seed or {}).items() for seed, v in values.items()]
        if seeds:
            self.client.log_batch(run_id, metrics=seeds)
        run_tags = [RunTag("state", state)] + ([RunTag("failure_reason", reason[:5000])]
                                               if reason else [])
        run_tags += [RunTag(key, str(value)) for key, value in (tags or {}).items()]
        self.client.log_batch(run_id, tags=run_tags)
        if genome:
            self.client.log_dict(run_id, json.loads(genome), "genome.json")
        self.client.set_terminated(run_id, _END.get(state, "FINISHED"))


def read_state(path: Path) -> dict[str, Any]:
    """The state file at ``path``; a UserError naming it when it is not the JSON written."""
    try:
        state = json.loads(Path(path).read_text())
        problem = "" if isinstance(state, dict) and isinstance(state.get("tracking_uri"),
                                                               str) else "no tracking URI"
    except json.JSONDecodeError as err:
        problem = f"not valid JSON: {err}"
    if problem:
        raise UserError(f"{path} is damaged: it does not hold the MLflow state minsearch wrote "
                        f"({problem}); `minsearch resume` rebuilds it from the MLflow store.")
    return state


def _write_state(path: Path, uri: str, experiment_id: str | None, parent_id: str | None,
                 trials: dict[str, str]) -> None:
    state = {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": parent_id,
             "trials": trials}
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def recover_state(files: TrackingFiles, tracking_uri: str | None = None,
                  experiment: str = "minsearch") -> int:
    """Write the state file again from the store, for one that was lost or damaged: the
    experiment by name, the search's parent run (the top-level run tagged with this folder; in
    the folder's own store, its only top-level run), each trial's run by its tag. Returns how
    many runs were found; a UserError when the parent run is ambiguous."""
    uri = tracking_uri or files.default_uri
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id],
                                                       max_results=10_000)
    top = [r for r in runs if PARENT_TAG not in r.data.tags]
    own = [r for r in top if r.data.tags.get(RUN_DIR_TAG) == str(files.folder)]
    if not own and uri == files.default_uri:
        own = top  # the folder's own store (a moved folder's tag names its old place)
    if len(own) > 1:
        raise UserError(f"Cannot rebuild {files.state}: the MLflow store {uri} holds "
                        f"{len(own)} search runs for {files.folder} "
                        f"({', '.join(r.info.run_id for r in own)}); restore the file from a "
                        f"backup.")
    parent = own[0].info.run_id if own else None
    trials = {r.data.tags[TRIAL_TAG]: r.info.run_id for r in runs
              if parent and r.data.tags.get(PARENT_TAG) == parent and TRIAL_TAG in r.data.tags}
    _write_state(files.state, uri, found.experiment_id if found else None, parent, trials)
    return len(trials) + bool(parent)


def ui_command(files: TrackingFiles, port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command for a run folder's store, bound to 127.0.0.1."""
    import sys

    state_path = Path(files.state)
    if not state_path.is_file():
        raise UserError(f"{files.folder} has no {state_path.name}: its search never started "
                        f"tracking.")
    uri = read_state(state_path)["tracking_uri"]
    if not uri.startswith("sqlite:"):
        raise UserError(f"This run tracks to {uri}; open that server's UI instead.")
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", "127.0.0.1", "--port", str(int(port))]
