"""A multi-fidelity job in a Ray trial (``strategy: multifidelity``): train each ``(seed, start,
stop)`` of the trial's :data:`~minsearch.search.promotion.WORK`, measure at the rung epochs.

A genome's jobs are separate Ray trials (its screening, then each promotion), so what one job
leaves for the next lives in the run folder, not in Ray's per-trial checkpoints:
:meth:`~minsearch.search.run_dir.RunDir.rung_checkpoint` ``(genome, seed, epoch)`` holds the
weights and trainer state (optimiser, lr schedule, step count) after ``epoch`` epochs of that
seed and the objectives measured there; it is written (atomically) at every rung epoch.

For a work item ``(seed, start, stop)`` the job continues from the newest rung checkpoint of
that (genome, seed) in ``[start, stop]`` (the parent's weights at 0), or from its own Ray
checkpoint when that is newer (a trial restored after a driver kill, between rung epochs),
and trains to ``stop``. Rung epochs already saved are read back, never trained again: a job
issued again after a driver kill (its first run started after Ray's last snapshot, so the
restored search never knew it) trains only what the first run did not save. Every seed
trains on the full budget's schedule (the task's ``epochs``), stopped at ``stop``.

The final result (``job=1``) holds :data:`~minsearch.search.promotion.RUNG_VALUES`
(``{seed: {epoch: [objectives in the task's order]}}``, JSON), the cost-only objectives
(measured once, before training: a genome over a budget is refused untrained, as in the
default strategy) named in ``costs``, the genome, ``held_out`` and where it ran; its
checkpoint holds the last work item's weights (a front member's weights come from the job
that brought it to the top rung).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from minsearch.objectives import measure_all, measure_costs, over_budget
from minsearch.plugins import load_plugins
from minsearch.search.hooks import TrialStart, run_trial_hooks
from minsearch.search.promotion import RUNG_EPOCHS, RUNG_VALUES, WORK
from minsearch.search.run_dir import RunDir
from minsearch.search.space import Gene, genome_rules
from minsearch.search.trainable import (
    FINAL,
    WEIGHTS,
    placement,
    report_with_files,
    snapshot,
    task_data,
    train_seed,
)
from minsearch.tasks.candidate import build_candidate
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.distill import build_teacher
from minsearch.tasks.train import resolve_device
from minsearch.tasks.trainer import Trainer


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _save(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill mid-write leaves no half file that a later job would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run_job(config: dict[str, Any], payload: dict[str, Any],
            state: dict[str, Any] | None) -> None:
    """Ray function trainable for one job; ``payload`` as for :func:`~minsearch.search.
    trainable.run_trial` plus ``run_dir`` (where the rung checkpoints live)."""
    start_time, started_at = time.perf_counter(), time.time()
    load_plugins(payload.get("plugins", ()))
    task = TaskConfig.from_flat(payload["task"])
    genes = [Gene.from_json(g) for g in payload["genes"]]
    params = {g.name: config[g.name] for g in genes}
    genome_key = json.dumps(params, sort_keys=True)  # halving_searcher.genome_name
    run, names = RunDir(payload["run_dir"]), list(task.measure.objectives)
    rung_epochs = {int(e) for e in config[RUNG_EPOCHS]}
    device, data = resolve_device(task.recipe.device), task_data(task)
    restored = (state or {}).get("current")  # this trial's own progress (a restored trial)
    teacher = None
    if task.recipe.distill is not None:
        teacher = build_teacher(task, payload.get("parent_state"), device)
    costs: dict[str, float] | None = None
    values: dict[str, dict[str, list[float]]] = {}  # seed -> epoch -> objectives
    weights: dict[str, torch.Tensor] = {}
    genome: dict[str, Any] = {}
    trained = 0
    for seed, start, stop in (tuple(int(x) for x in w) for w in config[WORK]):
        saved = {e: run.rung_checkpoint(genome_key, seed, e) for e in range(start, stop + 1)
                 if e > 0 and run.rung_checkpoint(genome_key, seed, e).is_file()}
        if start > 0 and start not in saved:
            raise RuntimeError(f"no rung checkpoint of {genome_key} seed {seed} at epoch "
                               f"{start} in {run.rungs_dir}: the job cannot continue it")
        for epoch, path in sorted(saved.items()):
            if epoch > start:  # measured by an earlier run of this job
                kept = _load(path)
                values.setdefault(str(seed), {})[str(epoch)] = kept["values"]
                costs = costs or kept["costs"]
                weights, genome = kept["model"], json.loads(kept["genome"])
        resume = max(saved, default=start)
        if resume == stop:
            continue  # saved by an earlier run of this job: nothing to train
        seed_task = task.replace(recipe=task.recipe.replace(seed=seed))
        model, genome = build_candidate(seed_task, genome_rules(genes, params), data,
                                        parent_state=payload.get("parent_state"),
                                        device=device)
        current = _load(saved[resume]) if resume > 0 else None
        costs = costs or (current or {}).get("costs")
        if costs is None:  # the genome's first training: measured once, before it
            costs = measure_costs(model, data, task, device)
            reason = over_budget(costs, task)
            if reason is not None:  # told PRUNED: never trained, never promoted
                tune.report({**costs, "rejected": 1, "reason": reason, "epoch": 0})
                return
        if restored and restored["seed"] == seed and resume < restored["epoch"] <= stop:
            current = restored
        trainer = Trainer(model, data, seed_task.recipe, device=device, teacher=teacher)
        run_trial_hooks(TrialStart(tune.get_context().get_trial_id(), dict(params),
                                   int(current["epoch"]) if current else 0, seed, stop))

        def measure_and_save(epoch: int, seed: int = seed, trainer: Trainer = trainer,
                             costs: dict[str, float] = costs, genome: dict = genome) -> None:
            """At a rung epoch: measure, save the rung checkpoint, keep the values."""
            if epoch not in rung_epochs:
                return
            measured, _ = measure_all(trainer.model, data, task, device, skip=set(costs))
            row = [float({**measured, **costs}[n]) for n in names]
            _save(run.rung_checkpoint(genome_key, seed, epoch),
                  {**snapshot(trainer, epoch), "values": row, "costs": costs,
                   "genome": json.dumps(genome, sort_keys=True)})
            values.setdefault(str(seed), {})[str(epoch)] = row

        first = int(current["epoch"]) if current else 0
        train_seed(trainer, current, {}, lambda: time.perf_counter() - start_time,
                    round_offset=trained - first, stop=stop, after_round=measure_and_save)
        trained += stop - first
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    assert costs is not None, "a job's first work item trains or reads a saved rung"
    final = {**costs, "job": 1, "final": 1, "epoch": trained, "costs": json.dumps(list(costs)),
             RUNG_VALUES: json.dumps(values), "held_out": len(data.test),
             "seconds": time.perf_counter() - start_time,
             "genome": json.dumps(genome, sort_keys=True), **placement(started_at)}
    report_with_files(final, {FINAL: final, WEIGHTS: weights})
