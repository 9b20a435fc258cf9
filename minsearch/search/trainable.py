"""The Ray Tune trainable: build one candidate, train it, measure it, report.

Runs in a Ray worker (reused across trials: the dataset is cached per process). Results:

- after every round (an epoch, or a tenth of a ``steps`` budget: ``RecipeConfig.rounds``):
  ``{"epoch" (the round), "step" (optimiser steps so far), "train_loss", "val_accuracy"}``,
  with a checkpoint (weights, optimiser, lr schedule, grad scaler, round) when
  ``checkpoint_seconds`` have passed since the last one, so a restored search continues a
  long trial where it stopped, on the same schedule (digits trials take seconds: a checkpoint
  per epoch cost more than the epoch). With ``distill`` the trial builds the teacher from the
  parent's state dict in its payload. These carry no
  objective, so a trial stopped early (ASHA) reaches Optuna without its metrics and is told
  PRUNED, never COMPLETE with early values;
- at the end: every objective plus ``final=1``, the resolved genome and where and when it ran
  (:func:`placement`: Ray node id and address, worker pid, GPU ids, start and end times),
  with a checkpoint that holds the trained weights and ``final.json``. A trial restarted from
  that checkpoint (the driver died between the trial's end and Ray's bookkeeping) re-reports
  it without training;
- on failure: ``{"failed": 1, "reason": ...}`` with a checkpoint holding ``failed.json``, then
  the error is raised (the trial ends ERROR, Optuna FAIL). A retry (``max_failures``) of a
  deterministic failure re-raises at once instead of training again.

Before it builds the candidate, a trial imports the space's plugins and runs the registered
trial hooks (:mod:`minsearch.search.hooks`); a hook that raises fails the trial.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from minsearch.objectives import measure_all
from minsearch.plugins import load_plugins
from minsearch.search.hooks import TrialStart, run_trial_hooks
from minsearch.search.run_dir import CheckpointFiles
from minsearch.search.space import Gene, genome_rules
from minsearch.tasks.candidate import build_candidate
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.data import DataKind, load_task_data
from minsearch.tasks.distill import build_teacher
from minsearch.tasks.train import evaluate, resolve_device
from minsearch.tasks.trainer import Trainer

FINAL = CheckpointFiles.FINAL
FAILED = CheckpointFiles.FAILED
STATE = CheckpointFiles.STATE
WEIGHTS = CheckpointFiles.WEIGHTS

_DATA: dict[str, DataKind] = {}  # per worker process, kept across reused trials


class TrialFailed(RuntimeError):
    """A trial failed for a reason recorded in its checkpoint (re-raised on retry)."""


def _data(task: TaskConfig) -> DataKind:
    key = json.dumps(task.to_flat(), sort_keys=True, default=str)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_task_data(task)
    return _DATA[key]


def _report(metrics: dict[str, Any], files: dict[str, Any]) -> None:
    """``tune.report`` with a checkpoint made of ``files`` (json for dicts, torch for the rest)."""
    with tempfile.TemporaryDirectory(prefix="minsearch-ckpt-") as tmp:
        for name, value in files.items():
            if name.endswith(".json"):
                Path(tmp, name).write_text(json.dumps(value))
            else:
                torch.save(value, Path(tmp, name))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _restored() -> dict[str, Any]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as path:
        restored: dict[str, Any] = {}
        for name in (FINAL, FAILED):
            if Path(path, name).is_file():
                restored[name] = json.loads(Path(path, name).read_text())
        if Path(path, STATE).is_file():
            restored[STATE] = torch.load(Path(path, STATE), map_location="cpu",
                                         weights_only=True)
        return restored


def run_trial(config: dict[str, Any], payload: dict[str, Any]) -> None:
    """Ray function trainable. ``config`` holds one option label per gene; ``payload`` holds
    the task (flat), the genes (json), the plugins, the parent's state dict (or None) and the
    thread count."""
    torch.set_num_threads(max(1, int(payload.get("threads", 1))))
    restored = _restored()
    if FINAL in restored:
        tune.report(restored[FINAL])
        return
    if FAILED in restored:
        raise TrialFailed(restored[FAILED]["reason"])
    try:
        _train_and_measure(config, payload, restored.get(STATE))
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        _report({"failed": 1, "reason": reason}, {FAILED: {"reason": reason}})
        raise


def placement(started_at: float) -> dict[str, Any]:
    """Where and when this trial ran: ``node`` (Ray node id), ``node_ip``, ``worker_pid``,
    ``gpus`` (the GPU ids Ray gave it, which are all it sees: Ray sets its
    ``CUDA_VISIBLE_DEVICES``), ``started_at`` and ``ended_at`` (Unix seconds). Our own keys,
    so that a re-report from the final checkpoint keeps them (Ray refills its ``pid`` and
    ``node_ip`` with the new worker's)."""
    import ray

    context = ray.get_runtime_context()
    return {"node": context.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "worker_pid": os.getpid(), "gpus": ",".join(str(g) for g in ray.get_gpu_ids()),
            "started_at": started_at, "ended_at": time.time()}


def _train_and_measure(config: dict[str, Any], payload: dict[str, Any],
                       state: dict[str, Any] | None) -> None:
    start, started_at = time.perf_counter(), time.time()
    load_plugins(payload.get("plugins", ()))  # before the task: they may register its names
    task = TaskConfig.from_flat(payload["task"])
    genes = [Gene.from_json(g) for g in payload["genes"]]
    params = {g.name: config[g.name] for g in genes}
    run_trial_hooks(TrialStart(tune.get_context().get_trial_id(), dict(params),
                               int(state["epoch"]) if state else 0))
    device = resolve_device(task.recipe.device)
    data = _data(task)
    model, genome = build_candidate(task, genome_rules(genes, params), data,
                                    parent_state=payload.get("parent_state"), device=device)
    teacher = None
    if task.recipe.distill is not None:
        teacher = build_teacher(task, payload.get("parent_state"), device)
    trainer = Trainer(model, data, task.recipe, device=device, teacher=teacher)
    first_round, seconds = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        trainer.load_state_dict(state)  # optimiser, lr schedule, grad scaler, step count
        first_round, seconds = int(state["epoch"]), float(state["seconds"])
    last_saved = time.perf_counter()
    for r in range(first_round, trainer.budget.rounds):
        loss = trainer.train_round(r)
        split = data.val if len(data.val) else data.test
        curve = {"epoch": r + 1, "step": trainer.step, "train_loss": loss,
                 "val_accuracy": evaluate(model, data, split, device=device)}
        if time.perf_counter() - last_saved < task.recipe.checkpoint_seconds:
            tune.report(curve)  # a checkpoint per epoch would cost more than the epoch here
            continue
        snapshot = {"model": model.state_dict(), **trainer.state_dict(), "epoch": r + 1,
                    "seconds": seconds + time.perf_counter() - start}
        _report(curve, {STATE: snapshot})
        last_saved = time.perf_counter()
    values, extras = measure_all(model, data, task, device)
    final = {**values, **extras, "final": 1, "epoch": trainer.budget.rounds,
             "seconds": seconds + time.perf_counter() - start,
             "genome": json.dumps(genome, sort_keys=True), **placement(started_at)}
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _report(final, {FINAL: final, WEIGHTS: weights})
