"""The Ray Tune trainable: build one candidate, measure its costs, train and measure it once
per seed, report.

Runs in a Ray worker (reused across trials: the dataset is cached per process). A trial first
builds its candidate and measures its cost-only objectives (bytes, FLOPs, peak memory: they do
not depend on training); a cost above the task's budget ends the trial there, untrained:
``{<costs>, "rejected": 1, "reason"}``, told PRUNED. Then it trains the candidate once per
seed of the task's ``seeds`` (``recipe.seed_list``), one after another, each from the parent's
weights with that seed. Results:

- after every round (an epoch, or a tenth of a ``steps`` budget: ``RecipeConfig.rounds``):
  ``{"epoch" (the round), "step" (optimiser steps so far), "seed", "train_loss",
  "val_accuracy"}`` (``epoch`` counts over the seeds, so it only grows), with a checkpoint
  when ``checkpoint_seconds`` have passed since the last one; after every seed but the last:
  ``{"epoch", "seed", "seed_done": 1}`` with a checkpoint. A checkpoint's state holds ``done``
  (every finished seed's measured values), ``current`` (the seed in training: weights,
  optimiser, lr schedule, grad scaler, round) and the seconds spent, so a restored trial
  trains no finished seed again and continues the current one where it stopped, on the same
  schedule (digits trials take seconds: a checkpoint per epoch cost more than the epoch).
  With ``distill`` the trial builds the teacher once, from the parent's state dict in its
  payload.
  These carry no objective, so a trial stopped early (ASHA) reaches Optuna without its
  metrics and is told PRUNED, never COMPLETE with early values;
- at the end: every objective's mean over the seeds (a cost: its one value) plus ``final=1``,
  ``seeds`` and ``per_seed`` (JSON: the seeds, and ``{objective: [value per seed]}`` for the
  objectives that were measured per seed), ``held_out`` (the test examples each measurement
  used: all of them), the resolved genome and where and when it ran (:func:`placement`: Ray
  node id and address, worker pid, GPU ids, start and end times), with a checkpoint that holds
  the last seed's trained weights and ``final.json``. A trial restarted from that checkpoint
  (the driver died between the trial's end and Ray's bookkeeping) re-reports it without
  training;
- on failure: ``{"failed": 1, "reason": ...}`` with a checkpoint holding ``failed.json``, then
  the error is raised (the trial ends ERROR, Optuna FAIL). A retry (``max_failures``) of a
  deterministic failure re-raises at once instead of training again.

With ``strategy: multifidelity`` a trial is one job of a genome (its config holds
:data:`~minsearch.search.promotion.WORK`): :mod:`minsearch.search.job_trainable` runs it with
the same :func:`train_seed`, stopped at the job's rung epochs.

A trial imports the space's plugins first; it runs the registered trial hooks
(:mod:`minsearch.search.hooks`) after it has built the candidate for a seed and before it
trains it (a genome over a budget never reaches them); a hook that raises fails the trial.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from minsearch.objectives import measure_all, measure_costs, over_budget
from minsearch.plugins import load_plugins
from minsearch.search.hooks import TrialStart, run_trial_hooks
from minsearch.search.promotion import WORK
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


def task_data(task: TaskConfig) -> DataKind:
    key = json.dumps(task.to_flat(), sort_keys=True, default=str)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_task_data(task)
    return _DATA[key]


def report_with_files(metrics: dict[str, Any], files: dict[str, Any]) -> None:
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
        if WORK in config:  # strategy: multifidelity
            from minsearch.search.job_trainable import run_job

            run_job(config, payload, restored.get(STATE))
        else:
            _train_and_measure(config, payload, restored.get(STATE))
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        report_with_files({"failed": 1, "reason": reason}, {FAILED: {"reason": reason}})
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


def _resumable(state: dict[str, Any] | None, first_seed: int) -> dict[str, Any]:
    """The checkpointed progress: ``done`` ({seed: measured values}), ``current`` (the seed in
    training: its model, optimiser, epochs done) and ``seconds`` spent. A checkpoint written
    before seeds existed holds one ``current`` at its top level: that of the first seed."""
    if not state:
        return {"done": {}, "current": None, "seconds": 0.0}
    if "model" in state:
        return {"done": {}, "current": {**state, "seed": first_seed},
                "seconds": float(state["seconds"])}
    return state


def _train_and_measure(config: dict[str, Any], payload: dict[str, Any],
                       state: dict[str, Any] | None) -> None:
    """Costs on the built candidate (a genome over a budget ends here, untrained), then one
    training and measurement per seed; the final result holds each objective's mean over the
    seeds and, in ``per_seed``, every seed's values."""
    start, started_at = time.perf_counter(), time.time()
    load_plugins(payload.get("plugins", ()))  # before the task: they may register its names
    task = TaskConfig.from_flat(payload["task"])
    genes = [Gene.from_json(g) for g in payload["genes"]]
    params = {g.name: config[g.name] for g in genes}
    device = resolve_device(task.recipe.device)
    data = task_data(task)
    seeds = task.recipe.seed_list
    progress = _resumable(state, seeds[0])
    done: dict[str, dict[str, float]] = dict(progress["done"])
    spent = lambda: float(progress["seconds"]) + time.perf_counter() - start
    costs: dict[str, float] | None = None
    teacher = None
    if task.recipe.distill is not None:
        teacher = build_teacher(task, payload.get("parent_state"), device)
    rounds = task.recipe.rounds
    for index, seed in enumerate(seeds):
        if str(seed) in done:  # trained and measured before a restart: never again
            continue
        current = progress["current"]
        current = current if current is not None and current["seed"] == seed else None
        seed_task = task.replace(recipe=task.recipe.replace(seed=seed))
        model, genome = build_candidate(seed_task, genome_rules(genes, params), data,
                                        parent_state=payload.get("parent_state"),
                                        device=device)
        if costs is None:
            costs = measure_costs(model, data, task, device)
            reason = over_budget(costs, task)
            if reason is not None:  # told PRUNED: no objective but the costs
                tune.report({**costs, "rejected": 1, "reason": reason, "epoch": 0})
                return
        run_trial_hooks(TrialStart(tune.get_context().get_trial_id(), dict(params),
                                   int(current["epoch"]) if current else 0, seed))
        train_seed(Trainer(model, data, seed_task.recipe, device=device, teacher=teacher),
                    current, done, spent, round_offset=index * rounds)
        values, extras = measure_all(model, data, task, device, skip=set(costs))
        done[str(seed)] = {**values, **extras}
        if index < len(seeds) - 1:  # the last seed's checkpoint is the final one (weights)
            report_with_files({"epoch": (index + 1) * rounds, "seed": seed, "seed_done": 1},
                    {STATE: {"done": done, "current": None, "seconds": spent()}})
    assert costs is not None, "the last seed trains in the run that reports the final result"
    means = {name: float(np.mean([done[str(s)][name] for s in seeds]))
             for name in done[str(seeds[-1])]}
    per_seed = {name: [done[str(s)][name] for s in seeds]
                for name in task.measure.objectives if name not in costs}
    final = {**means, **costs, "final": 1, "epoch": rounds * len(seeds),
             "seconds": spent(), "seeds": json.dumps(list(seeds)),
             "per_seed": json.dumps(per_seed), "held_out": len(data.test),
             "genome": json.dumps(genome, sort_keys=True), **placement(started_at)}
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}  # the last seed's
    report_with_files(final, {FINAL: final, WEIGHTS: weights})


def train_seed(trainer: Trainer, current: dict[str, Any] | None,
                done: dict[str, dict[str, float]], spent: Callable[[], float],
                round_offset: int, stop: int | None = None,
                after_round: Callable[[int], None] | None = None) -> None:
    """Train one seed's candidate (``trainer.recipe.seed``) for the recipe's rounds (up to
    round ``stop`` when given: a multi-fidelity job), from ``current``'s checkpoint when given.
    Rounds are reported counted over the seeds (``round_offset`` before this one), so that they
    only grow; ``after_round(rounds done)`` runs after each round, before its report."""
    model, data, recipe = trainer.model, trainer.data, trainer.recipe
    first_round = 0
    if current is not None:
        model.load_state_dict(current["model"])
        trainer.load_state_dict(current)  # optimiser, lr schedule, grad scaler, step count
        first_round = int(current["epoch"])
    last_saved = time.perf_counter()
    for r in range(first_round, trainer.budget.rounds if stop is None else stop):
        loss = trainer.train_round(r)
        split = data.val if len(data.val) else data.test
        curve = {"epoch": round_offset + r + 1, "step": trainer.step, "seed": recipe.seed,
                 "train_loss": loss,
                 "val_accuracy": evaluate(model, data, split, device=trainer.device)}
        if after_round is not None:  # before Ray's checkpoint: one restored from it never
            after_round(r + 1)  # skips what after_round saves (a job's rung checkpoint)
        if time.perf_counter() - last_saved < recipe.checkpoint_seconds:
            tune.report(curve)  # a checkpoint per round would cost more than the round here
            continue
        report_with_files(curve, {STATE: {"done": done, "current": snapshot(trainer, r + 1),
                                "seconds": spent()}})
        last_saved = time.perf_counter()


def snapshot(trainer: Trainer, epoch: int) -> dict[str, Any]:
    """What continues ``trainer``'s seed exactly after ``epoch`` rounds: weights, optimiser,
    lr schedule, grad scaler, step count."""
    return {"model": trainer.model.state_dict(), **trainer.state_dict(), "epoch": epoch,
            "seed": trainer.recipe.seed}
