"""Run, resume and finish a search: Ray Tune runs the trials, Optuna proposes them.

- Ray starts local-only on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before
  ``ray.init``, as DESIGN.md measured) unless ``address`` joins an existing cluster (checked to
  answer first, :mod:`minsearch.search.head`; one on loopback keeps 127.0.0.1); it is shut
  down when the search ends, whatever happens. On a cluster, trials go to whichever node has
  their resources (docs/distributed.md); Ray Tune's experiment (``RUN_DIR/tune``) must be on
  storage every node sees, or at a URI (``storage``, :mod:`minsearch.search.storage`). A head
  lost mid-search ends the driver with one line (:func:`~minsearch.search.head.watch_head`).
- ``TUNE_DISABLE_STRICT_METRIC_CHECKING=1``: per-epoch results carry no objective on purpose
  (see :mod:`minsearch.search.trainable`).
- ``TUNE_GLOBAL_CHECKPOINT_S`` (default here 1 s instead of Ray's adaptive >= 10 s): how stale
  Ray's snapshot of the experiment can be when the driver is killed. Finished trials that the
  snapshot missed re-report their final checkpoint on resume instead of training again.
- ``reuse_actors=True`` (a new worker re-imports torch: ~1.4 s per trial otherwise). The
  first ``max_concurrent`` trials start together (the searcher does not hold them back for
  the baseline), so their workers start together and stay: see
  :mod:`minsearch.search.searcher` for why trials used to run one at a time.
- Failures: ``FailureConfig(max_failures=1)`` retries a trial once (a worker that died);
  a deterministic failure re-raises at once on the retry. Errored trials are never resumed
  (Optuna already has them as FAIL).
- One driver per run folder (:mod:`minsearch.search.lock`): ``search`` and ``resume`` lock the
  folder before they write anything and hold it until they return.
- Ctrl-C and SIGTERM (:mod:`minsearch.search.stopping`) stop the trials, close the books
  (results, Optuna, MLflow, status ``interrupted``) and raise
  :class:`~minsearch.search.stopping.SearchInterrupted`; ``resume`` continues the trials that
  were in flight from their last checkpoints.
- ``strategy: multifidelity``: :class:`~minsearch.search.halving_searcher.HalvingSearcher`
  instead of ``GenomeSearcher``, one trial per job, as many as it asks for (``num_samples``
  -1) until it says FINISHED; a search that ends before that was stopped.
- A parent that diverges ends the search: status ``failed`` with the reason, and a UserError
  that names the task's ``lr``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minsearch.errors import UserError
from minsearch.search.finish import Outcome, finish_search, halving_finished
from minsearch.search.head import check_head, watch_head
from minsearch.search.lock import driver_lock
from minsearch.search.plan import Inputs, Plan, create_plan, load_plan
from minsearch.search.run_dir import RunDir, describe_delivered
from minsearch.search.stopping import SearchInterrupted, StopSignals, stop_signals, unfinished
from minsearch.search.storage import TuneStore, experiment_uri


def on_loopback(address: str | None) -> bool:
    """Whether ``address`` (``HOST:PORT``) names this machine's loopback: a cluster whose
    nodes all run here with ``--node-ip-address 127.0.0.1`` (the tests' clusters)."""
    host = (address or "").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _set_env(local: bool) -> None:
    if local:  # bind 127.0.0.1 only; for an address on loopback, also keep Ray from
        # replacing 127.0.0.1 with the host's address (Ray's resolve_ip_for_localhost)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                driver_file: Path | None = None, run_path: Path | None = None) -> Iterator[None]:
    """``ray.init`` (local on 127.0.0.1, or joining ``address``) ... ``ray.shutdown``. The
    driver's processes are recorded in ``driver_file`` (for resume). On a cluster, a head
    lost meanwhile ends the process with one line naming ``run_path`` to resume
    (:func:`~minsearch.search.head.watch_head`)."""
    _set_env(local=address is None or on_loopback(address))
    check_head(address)
    import ray

    if ray.is_initialized():
        ray.shutdown()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR, "configure_logging": True}
    try:  # a Ctrl-C during ray.init still shuts down what it started
        if address is None:
            package_root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            kwargs.update(num_cpus=num_cpus, runtime_env={"env_vars": {"PYTHONPATH": path}})
            # "local": always a new Ray of our own; a bare ray.init() joins the last cluster
            # that `ray start` left on this machine, whose loss then kills our trials
            ray.init(address="local", **kwargs)
        else:
            ray.init(address=address, **kwargs)
        if driver_file is not None:
            from minsearch.search.processes import record_driver

            record_driver(driver_file)
        with contextlib.ExitStack() as watching:
            if address is not None and "://" not in address and run_path is not None:
                watching.enter_context(watch_head(ray.get_runtime_context().gcs_address,
                                                  run_path))
            yield
    finally:
        ray.shutdown()


def _payload(plan: Plan, parent_state: dict | None) -> dict[str, Any]:
    return {"task": plan.task.to_flat(), "genes": [g.to_json() for g in plan.genes],
            "plugins": list(plan.space.plugins), "parent_state": parent_state,
            "threads": max(1, int(plan.task.resources.cpus_per_trial)),
            "run_dir": str(plan.run.path.resolve())}  # multifidelity: rung checkpoints


def _trainable(plan: Plan, parent_state: dict | None):
    from ray import tune

    from minsearch.search.trainable import run_trial

    resources = {"cpu": plan.task.resources.cpus_per_trial,
                 "gpu": plan.task.resources.gpus_per_trial}
    trainable = tune.with_parameters(run_trial, payload=_payload(plan, parent_state))
    return tune.with_resources(trainable, resources)


def _parent(plan: Plan) -> dict | None:
    if plan.task.recipe.init != "parent":
        return None
    import torch

    from minsearch.tasks.candidate import load_or_train_parent
    from minsearch.tasks.data import load_task_data
    from minsearch.tasks.train import Diverged, resolve_device

    data = load_task_data(plan.task)
    torch.set_num_threads(max(1, int(plan.task.resources.cpus_per_trial)))  # as a trial has
    known = (plan.settings.parent or {}).get("key")  # resume: the parent it started with
    try:
        state, info = load_or_train_parent(plan.task, data, plan.run.parent_dir,
                                           resolve_device(plan.task.recipe.device), key=known)
    except Diverged as err:  # the same task diverges again on resume: the search has failed
        lr = plan.task.recipe.lr
        what = str(err).removesuffix(" the candidate diverged.").rstrip("; .")
        plan.save_settings(status="failed", reason=f"the parent diverged: {what}")
        raise UserError(f"The parent diverged while training ({what}): the "
                        f"task's `lr: {lr:g}` is too high for this model; lower it (e.g. "
                        f"`lr: {lr / 10:g}`) and start a new search.") from err
    plan.save_settings(parent=info)
    if "as_delivered" in info:  # the user's model, before any search: what they start from
        print(f"parent: {info['weights']}, {describe_delivered(info)}", flush=True)
    return state


def _tuner(plan: Plan, parent_state: dict | None, *, live: bool, tracking_uri: str | None):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from minsearch.search.callbacks import SearchCallback
    from minsearch.search.halving_searcher import HalvingSearcher
    from minsearch.search.searcher import GenomeSearcher

    if plan.halving is None:
        searcher = GenomeSearcher(plan.genes, plan.space, plan.directions, plan.constraint,
                                  plan.run.storage_url)
    else:  # strategy: multifidelity: one trial per job; it says when the search is over
        searcher = HalvingSearcher(plan.genes, plan.space, plan.directions, plan.constraint,
                                   plan.run.storage_url, plan.halving)
    scheduler = None
    if plan.space.asha_grace_epochs:
        scheduler = ASHAScheduler(metric="val_accuracy", mode="max", time_attr="epoch",
                                  max_t=plan.task.recipe.rounds
                                  * len(plan.task.recipe.seed_list),  # rounds count over seeds
                                  grace_period=plan.space.asha_grace_epochs,
                                  stop_last_trials=False)
    callback = SearchCallback(plan.run, plan.directions, plan.gene_names, plan.baseline,
                              plan.space.trials, plan.task.resources.max_concurrent,
                              plan.constraint, tracking_uri, live=live, halving=plan.halving,
                              storage=plan.settings.storage)
    return tune.Tuner(
        _trainable(plan, parent_state),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=plan.space.trials if plan.halving is None
                                    else -1,  # jobs until the searcher says FINISHED
                                    max_concurrent_trials=plan.task.resources.max_concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(**plan.tune.run_config(), verbose=0, callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))


def _start_tracking(plan: Plan, tracking_uri: str | None) -> None:
    from minsearch.tracking import SearchTracker

    tracker = SearchTracker.open(plan.run.tracking, tracking_uri)
    params = {"task": plan.task.name, "model": plan.task.model, "sampler": plan.space.sampler,
              "trials": plan.space.trials, "objectives": ",".join(plan.directions),
              "genes": len(plan.genes), "constraint": plan.constraint.describe(),
              "max_worsening": plan.constraint.max_worsening}
    if plan.space.sampler_params:
        params["sampler_params"] = plan.space.sampler_params
    delivered = (plan.settings.parent or {}).get("as_delivered")
    if plan.task.weights is not None and delivered:
        params["weights"] = plan.task.weights.describe()
        params["as_delivered_test_accuracy"] = delivered["test_accuracy"]
    tracker.start_search(f"search-{plan.run.name}", params)


def _drive(plan: Plan, stop: StopSignals, tuner: Callable[[dict | None], Any], *,
           address: str | None, num_cpus: int | None, tracking_uri: str | None) -> Outcome:
    """Train the parent, start tracking and Ray, fit ``tuner(parent_state)``, close the books.
    Raises :class:`SearchInterrupted` after closing them when a stop signal came."""
    grid = None
    try:
        parent_state = _parent(plan)
        _start_tracking(plan, tracking_uri)
        plan.save_settings(status="running")
        with ray_session(address, num_cpus, plan.run.driver_json, plan.run.path):
            stop.install()  # again: ray.init gave SIGTERM to Ray's crash handler
            try:
                grid = tuner(parent_state).fit()
            finally:
                stop.defer()  # Ray's shutdown and the books run to the end
    except KeyboardInterrupt:
        stop.defer()
        stop.interrupted()
    jobs = plan.halving is not None  # multifidelity: over when its searcher says so
    if grid is not None and (unfinished(grid, plan.space.trials, jobs)
                             or jobs and not halving_finished(plan)):
        stop.interrupted()  # Ray Tune took the SIGINT and returned
    if stop.received is None:
        return finish_search(plan)
    outcome = finish_search(plan, interrupted=True)
    if plan.settings.status == "finished":  # the signal came after the last trial
        return outcome
    counts = outcome.summary.get("counts", {})
    raise SearchInterrupted(
        f"interrupted by {stop.name}: {sum(counts.values())} of {plan.space.trials} trials "
        f"finished; {plan.run.path} is in status `interrupted`; continue it with `minsearch "
        f"resume {plan.run.path}`.", stop.received)


def run_search(inputs: Inputs, run: RunDir, *, address: str | None = None,
               num_cpus: int | None = None, live: bool = True,
               tracking_uri: str | None = None, storage: str | None = None) -> Outcome:
    """Create the run folder for checked ``inputs`` (:func:`~minsearch.search.plan.
    check_inputs`), train the parent, run every trial, write the results; Ray Tune's
    experiment goes to ``storage`` (a URI, :mod:`minsearch.search.storage`) or to the run
    folder. The folder is locked before anything is written in it
    (:mod:`minsearch.search.lock`)."""
    RunDir.new(run.path)  # not a file, not in use, no search there
    check_head(address)  # before the folder and the parent: a wrong address costs nothing
    storage = experiment_uri(storage, run.name) if storage is not None else None
    TuneStore(run, storage).check_new()  # opens the URI: a wrong one costs nothing either
    run.create()
    with driver_lock(run.path), stop_signals() as stop:
        plan = create_plan(inputs, RunDir.new(run.path))  # checked again, under the lock
        plan.save_settings(address=address, num_cpus=num_cpus, tracking_uri=tracking_uri,
                           storage=storage)
        return _drive(plan, stop, lambda parent: _tuner(plan, parent, live=live,
                                                        tracking_uri=tracking_uri),
                      address=address, num_cpus=num_cpus, tracking_uri=tracking_uri)


def resume_search(run: RunDir, *, address: str | None = None, num_cpus: int | None = None,
                  live: bool = True) -> Outcome:
    """Continue a search whose driver stopped (killed, crashed, interrupted); the folder is
    locked before anything is read or changed."""
    with driver_lock(run.path), stop_signals() as stop:
        return _resume(run, stop, address=address, num_cpus=num_cpus, live=live)


def _resume(run: RunDir, stop: StopSignals, *, address: str | None, num_cpus: int | None,
            live: bool) -> Outcome:
    from minsearch.search.integrity import check_run_folder, rebuild
    from minsearch.search.processes import end_stale_processes

    damaged = check_run_folder(run, "resume")  # reads only: a damaged folder stays as it is
    plan = load_plan(run)
    if plan.settings.status == "failed":
        raise UserError(f"The search in {run.path} failed ({plan.settings.reason}) and cannot "
                        f"be resumed; fix the task and start a new search.")
    check_head(address or plan.settings.address)  # before anything changes
    end_stale_processes(run.driver_json)
    rebuild(plan, damaged)  # what the other records rebuild: trials.json, mlflow.json, parent
    if address is not None:  # a new head (the old one lost): the next resume goes there too
        plan.save_settings(address=address)
    if plan.settings.status == "finished":
        return finish_search(plan)
    tracking_uri = plan.settings.tracking_uri

    def tuner(parent_state: dict | None):
        from ray import tune

        if not plan.tune.has_tuner:  # stopped before Ray saved anything:
            run.study_db.unlink(missing_ok=True)  # no trial ran; start over
            return _tuner(plan, parent_state, live=live, tracking_uri=tracking_uri)
        path, where = plan.tune.restore_args()
        return tune.Tuner.restore(path, trainable=_trainable(plan, parent_state),
                                  resume_unfinished=True, resume_errored=False,
                                  restart_errored=False, **where)

    return _drive(plan, stop, tuner, address=address or plan.settings.address,
                  num_cpus=num_cpus or plan.settings.num_cpus, tracking_uri=tracking_uri)
