"""The driver-side Ray Tune callback: trial records, MLflow runs, the live view.

Ray pickles the run config (with this callback) into the experiment folder and unpickles it
on ``Tuner.restore``, so the callback pickles only its settings; the tracker, the records and
the live view are (re)built in :meth:`SearchCallback.setup`, which Ray calls at the start of
every ``fit``. Records and the results table are written to the run folder after every
finished trial, so ``minsearch front`` works on a running or killed search.

With ``strategy: multifidelity`` (``halving``) a Ray trial is one job of a genome: the records
(``trials.json``) stay one per job, the results table, the live view and MLflow are per genome
(:func:`~minsearch.search.multifidelity.genome_records`). A genome's MLflow run is keyed by its
first job's trial id; each job logs its measurements there as ``<objective>_seed<seed>`` at the
rung epochs, and the run ends when the genome reaches the top rung, fails or is refused.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from minsearch.objectives.constraint import Constraint
from minsearch.search.multifidelity import genome_key, genome_records
from minsearch.search.promotion import HalvingConfig
from minsearch.search.results import (
    TrialRecord,
    front_summary,
    record_from_result,
    results_frame,
    trial_number,
)
from minsearch.search.run_dir import RunDir
from minsearch.search.storage import TuneStore

_LIVE_STATES = {"RUNNING": "RUNNING", "PENDING": "PENDING", "PAUSED": "PENDING"}


class SearchCallback(Callback):
    storage: str | None = None  # also for a callback pickled before this attribute existed

    def __init__(self, run: RunDir, directions: dict[str, str], gene_names: list[str],
                 baseline: dict[str, str], total: int, concurrency: int,
                 constraint: Constraint, tracking_uri: str | None, live: bool = True,
                 halving: HalvingConfig | None = None, storage: str | None = None) -> None:
        self.run = RunDir(run.path.resolve())
        self.directions = dict(directions)
        self.gene_names = list(gene_names)
        self.baseline = dict(baseline)
        self.total = total
        self.concurrency = concurrency
        self.constraint = constraint
        self.tracking_uri = tracking_uri
        self.live = live
        self.halving = halving
        self.storage = storage  # where checkpoints are (minsearch.search.storage)
        self._runtime: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runtime"] = {}
        return state

    # -- runtime state -----------------------------------------------------------------------

    @property
    def records(self) -> dict[str, TrialRecord]:
        return self._runtime.setdefault("records", {})

    def setup(self, **info: Any) -> None:
        from minsearch.tracking import SearchTracker

        records = {r.trial_id: r for r in self.run.read_records()}  # a resumed search's
        self._runtime = {"records": records, "last_draw": 0.0,
                         "tracker": SearchTracker.open(self.run.tracking, self.tracking_uri)}
        if self.live:
            from minsearch.search.display import LiveView

            view = LiveView(self.total, self.concurrency, self.directions, self.gene_names,
                            self.constraint)
            view.start()
            self._runtime["view"] = view

    @property
    def tracker(self):
        return self._runtime["tracker"]

    def close(self) -> None:
        view = self._runtime.pop("view", None)
        if view is not None:
            view.stop()

    # -- Ray events ----------------------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        params = {g: str(trial.config.get(g, "")) for g in self.gene_names}
        record = self.records.get(trial.trial_id) or TrialRecord(trial.trial_id, params)
        record.state = "RUNNING"
        record.number = trial_number(trial.experiment_tag)
        record.baseline = self._is_baseline(trial.trial_id, params)
        self.records[trial.trial_id] = record
        self.tracker.trial_run(self._key(trial.trial_id, params), params)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict,
                        **info: Any) -> None:
        if self.halving is None and "epoch" in result and not result.get("final") and \
                not result.get("failed"):  # a job's epochs restart: its rungs are logged
            curves = {k: result[k] for k in ("train_loss", "val_accuracy") if k in result}
            self.tracker.log_metrics(trial.trial_id, curves, step=int(result["epoch"]))
            if trial.trial_id in self.records:
                self.records[trial.trial_id].epochs = int(result["epoch"])

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._finish(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._finish(trial, error=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        view = self._runtime.get("view")
        now = time.monotonic()
        if view is None or now - self._runtime.get("last_draw", 0.0) < 0.5:
            return
        self._runtime["last_draw"] = now
        for trial in trials:  # pending and running trials, for the counts
            record = self.records.get(trial.trial_id)
            if record is None:
                params = {g: str(trial.config.get(g, "")) for g in self.gene_names}
                record = self.records[trial.trial_id] = TrialRecord(trial.trial_id, params)
            if record.state in (*_LIVE_STATES.values(), "INTERRUPTED") and \
                    trial.status in _LIVE_STATES:
                record.state = _LIVE_STATES[trial.status]
        view.update(self.genomes())

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------

    def _is_baseline(self, trial_id: str, params: dict[str, str]) -> bool:
        if params != self.baseline:
            return False
        # The baseline runs first and alone; a later all-keep proposal is an ordinary trial.
        marked = [r.trial_id for r in self.records.values() if r.baseline]
        return not marked or marked[0] == trial_id

    def _key(self, trial_id: str, params: dict[str, str]) -> str:
        """The trial id MLflow knows the trial by: its genome's first job's (multifidelity)."""
        return trial_id if self.halving is None else genome_key(self.records, params, trial_id)

    def genomes(self) -> list[TrialRecord]:
        """The records of the results table: one per trial, or per genome (multifidelity)."""
        return genome_records(list(self.records.values()), self.halving)

    def _finish(self, trial, *, error: bool) -> None:
        params = {g: str(trial.config.get(g, "")) for g in self.gene_names}
        checkpoint = TuneStore(self.run, self.storage).checkpoint_location(
            trial.checkpoint.path if trial.checkpoint is not None else "")
        error_text = (trial.get_error() or "") if error else ""
        record = record_from_result(trial.trial_id, params, dict(trial.last_result or {}),
                                    error, list(self.directions), checkpoint, error_text)
        record.baseline = self._is_baseline(trial.trial_id, params)
        record.number = trial_number(trial.experiment_tag)
        self.records[trial.trial_id] = record
        if self.halving is not None:
            record = self._job_done(record)
            if record is None:
                self.persist()
                return
        where = {"node": record.node, "node_ip": record.node_ip, "gpus": record.gpus} \
            if record.node else {}
        self.tracker.end_trial(record.trial_id, record.state, record.objectives,
                               {**record.extras, **self._intervals(record)}, record.genome,
                               record.reason, tags=where,
                               per_seed={k: dict(zip(record.seeds, v, strict=True))
                                         for k, v in record.per_seed.items()})
        self.persist()

    def _job_done(self, job: TrialRecord) -> TrialRecord | None:
        """Log a job's measurements on its genome's run; the genome's record when the genome
        is done (top rung, failed, refused), else None."""
        key = self._key(job.trial_id, job.params)
        for seed, by_epoch in job.rung_values.items():
            for epoch, row in by_epoch.items():
                self.tracker.log_metrics(key, {f"{k}_seed{seed}": v for k, v in row.items()
                                               if k not in job.objectives}, step=int(epoch))
        jobs = [r for r in self.records.values() if r.params == job.params]
        genome = genome_records(jobs, self.halving)[0]
        top = genome.extras.get("rung") == self.halving.top
        done = genome.state == "FAILED" or top or genome.reason.startswith("over budget")
        return genome if done else None

    def _intervals(self, record: TrialRecord) -> dict[str, float]:
        """``<objective>_lo``/``_hi`` (the t-interval of the mean over seeds, from two seeds
        on), ``n_seeds`` and ``held_out``, for the trial's MLflow run."""
        from minsearch.stats import mean_interval

        if record.state != "COMPLETE":
            return {}
        metrics = {"n_seeds": float(len(record.seeds)), "held_out": float(record.held_out)}
        for name, values in record.per_seed.items():
            if len(values) >= 2:
                interval = mean_interval(values, self.constraint.confidence)
                metrics.update({f"{name}_lo": interval.lo, f"{name}_hi": interval.hi})
        return metrics

    def persist(self) -> None:
        self.run.write_records(list(self.records.values()))
        frame = results_frame(self.genomes(), self.gene_names, self.directions, self.constraint)
        self.run.write_results(frame, front_summary(frame, self.directions))
