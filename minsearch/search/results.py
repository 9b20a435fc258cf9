"""The results table and the Pareto front (files: :class:`~minsearch.search.run_dir.RunDir`).

One :class:`TrialRecord` per Ray trial (with ``strategy: multifidelity``, per job: the table
is built from one record per genome, :func:`~minsearch.search.multifidelity.genome_records`);
states are Optuna's words:

- ``COMPLETE``: trained and measured (the only state that can be on the front);
- ``FAILED``: raised or diverged, with its reason;
- ``PRUNED``: stopped early by the scheduler (never on the front: its values would be early);
- ``RUNNING``/``PENDING``: not finished yet (a live search, or a killed one);
- ``INTERRUPTED``: in flight when Ctrl-C or SIGTERM stopped the driver; ``minsearch resume``
  continues it from its last checkpoint.

A COMPLETE trial holds each objective's mean over the task's seeds (``objectives``), every
seed's values (``per_seed``; cost-only objectives are measured once and have none) and
``held_out``, the number of test examples each measurement used. The results table adds per
objective ``<name>:lo`` and ``<name>:hi``, the Student-t interval of the mean at the
constraint's ``confidence`` (NaN with one seed: no spread to estimate; a cost's exact value at
both ends), and ``<name>:per_seed``.

Feasibility (:meth:`Constraint.judge`): the first objective's worsening from the baseline
(an accuracy drop, or a language model's loss increase) is measured as a paired difference on
the seeds both trained (columns ``worsening``, ``worsening:lo``, ``worsening:hi``) and judged
against the allowed worsening: ``feasibility`` is ``feasible`` (the whole interval within
the limit), ``infeasible`` (the whole interval beyond it) or ``uncertain``. With one seed
there is no interval: the point value decides, as it always did. ``feasible`` is True only
for ``feasible``.

The front is the non-dominated set of the feasible COMPLETE trials' means (``rank`` 0,
``pareto``). ``stability`` marks how sure each member's place is: the share of seed-bootstrap
resamples in which it stays non-dominated among the feasible trials
(:func:`minsearch.pareto.front_stability`; NaN with one seed). ``contender`` marks
``uncertain`` trials that no feasible trial dominates: they would be on the front if they
turned out feasible, and are shown beside it, marked, never on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from minsearch import pareto
from minsearch.objectives.constraint import Constraint, Judgement
from minsearch.stats import mean_interval

STATES = ("COMPLETE", "FAILED", "PRUNED", "RUNNING", "PENDING", "INTERRUPTED")


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, str]
    state: str = "PENDING"
    objectives: dict[str, float] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    epochs: int = 0
    seconds: float = 0.0
    genome: str = ""  # resolved genome, JSON
    checkpoint: str = ""  # directory of the final checkpoint (weights)
    baseline: bool = False
    number: int = 0  # creation order (1 = the baseline)
    node: str = ""  # Ray node id of the worker that finished it
    node_ip: str = ""
    worker_pid: int = 0
    gpus: str = ""  # the GPU ids Ray gave it ("0", "0,1"; "" without GPUs)
    started_at: float = 0.0  # Unix seconds: when the finishing run started and ended
    ended_at: float = 0.0
    seeds: list[int] = field(default_factory=list)  # the training seeds, in order
    per_seed: dict[str, list[float]] = field(default_factory=dict)  # objective -> per seed
    held_out: int = 0  # test examples each measurement rests on
    # a multi-fidelity job's measurements: {seed: {epoch: {objective: value}}} (its costs in
    # ``objectives``); genome_records folds a genome's jobs into one record
    rung_values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_row(self, gene_names: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"number": self.number, "trial_id": self.trial_id,
                               "state": self.state, "baseline": self.baseline}
        row.update({f"gene:{g}": self.params.get(g, "") for g in gene_names})
        row.update(self.objectives)
        row.update({f"{name}:per_seed": json.dumps(values)
                    for name, values in self.per_seed.items()})
        row.update(self.extras)
        row.update({"n_seeds": len(self.seeds), "seeds": json.dumps(self.seeds),
                    "held_out": self.held_out})
        row.update({"epochs": self.epochs, "seconds": round(self.seconds, 3),
                    "reason": self.reason, "genome": self.genome,
                    "checkpoint": self.checkpoint, "node": self.node, "node_ip": self.node_ip,
                    "worker_pid": self.worker_pid, "gpus": self.gpus,
                    "started_at": self.started_at,
                    "ended_at": self.ended_at})
        return row


def record_from_result(trial_id: str, params: dict[str, str], last: dict[str, Any],
                       error: bool, objectives: list[str], checkpoint: str = "",
                       error_text: str = "") -> TrialRecord:
    """A finished trial's record from its last reported result."""
    record = TrialRecord(trial_id, dict(params), checkpoint=checkpoint)
    record.epochs = int(last.get("epoch", 0) or 0)
    record.seconds = float(last.get("seconds", last.get("time_total_s", 0.0)) or 0.0)
    record.node, record.node_ip = str(last.get("node", "")), str(last.get("node_ip", ""))
    record.worker_pid = int(last.get("worker_pid", last.get("pid", 0)) or 0)
    record.gpus = str(last.get("gpus", ""))
    record.started_at = float(last.get("started_at", 0.0) or 0.0)
    record.ended_at = float(last.get("ended_at", last.get("timestamp", 0.0)) or 0.0)
    if error or last.get("failed"):
        record.state = "FAILED"
        record.reason = str(last.get("reason") or _last_line(error_text) or "unknown error")
    elif last.get("job"):  # a multi-fidelity job: values at rung epochs, costs once
        record.state = "COMPLETE"
        record.genome = str(last.get("genome", ""))
        record.held_out = int(last.get("held_out", 0) or 0)
        record.objectives = {k: float(last[k]) for k in json.loads(last.get("costs") or "[]")}
        record.rung_values = {
            str(seed): {str(epoch): dict(zip(objectives, map(float, row), strict=True))
                        for epoch, row in by_epoch.items()}
            for seed, by_epoch in json.loads(last.get("rung_values") or "{}").items()}
    elif last.get("final"):
        record.state = "COMPLETE"
        record.objectives = {k: float(last[k]) for k in objectives}
        record.extras = {k: float(v) for k, v in last.items() if k.startswith("corruption/")}
        record.genome = str(last.get("genome", ""))
        record.seeds = [int(s) for s in json.loads(last.get("seeds") or "[]")]
        per_seed = json.loads(last.get("per_seed") or "{}")
        record.per_seed = {k: [float(v) for v in per_seed[k]] for k in objectives
                           if k in per_seed}
        record.held_out = int(last.get("held_out", 0) or 0)
    elif last.get("rejected"):  # over a budget: never trained
        record.state = "PRUNED"
        record.reason = str(last.get("reason", "over budget"))
    else:
        record.state = "PRUNED"
        record.reason = f"stopped early after epoch {record.epochs}"
    return record


def trial_number(experiment_tag: str) -> int:
    """Ray's experiment tag starts with the trial's creation counter: ``"3_norm=dyt,..."``."""
    head = str(experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def results_frame(records: list[TrialRecord], gene_names: list[str],
                  directions: dict[str, str], constraint: Constraint) -> pd.DataFrame:
    """One row per trial with the interval columns, ``feasibility``, ``feasible``, ``rank``
    (Pareto rank among feasible COMPLETE trials, -1 elsewhere), ``pareto``, ``stability`` and
    ``contender`` (see the module docstring)."""
    records = sorted(records, key=lambda r: r.number)
    frame = pd.DataFrame([r.to_row(gene_names) for r in records])
    if frame.empty:
        return frame
    for name in directions:
        if name not in frame:
            frame[name] = math.nan
    by_id = {r.trial_id: r for r in records}
    _add_intervals(frame, by_id, list(directions), constraint.confidence)
    complete = frame["state"] == "COMPLETE"
    base = [by_id[t] for t in frame.loc[frame["baseline"] & complete, "trial_id"]]
    judged = [_judge(constraint, by_id[t], base[0] if base else None) if done else None
              for t, done in zip(frame["trial_id"], complete, strict=True)]
    frame["worsening"] = [j.worsening if j else math.nan for j in judged]
    frame["worsening:lo"] = [j.lo if j else math.nan for j in judged]
    frame["worsening:hi"] = [j.hi if j else math.nan for j in judged]
    frame["feasibility"] = [j.verdict if j else "" for j in judged]
    frame["feasible"] = frame["feasibility"] == "feasible"
    frame["rank"] = -1
    eligible = frame["feasible"] & frame[list(directions)].notna().all(axis=1)
    if eligible.any():
        values = frame.loc[eligible, list(directions)].to_numpy(dtype=float)
        frame.loc[eligible, "rank"] = pareto.non_dominated_sort(values, list(directions.values()))
    frame["pareto"] = frame["rank"] == 0
    frame["stability"] = math.nan
    samples = _seed_samples([by_id[t] for t in frame.loc[eligible, "trial_id"]], directions)
    if samples is not None:
        shares = pareto.front_stability(samples, list(directions.values()))
        frame.loc[eligible, "stability"] = shares
        frame.loc[~frame["pareto"], "stability"] = math.nan
    uncertain = (frame["feasibility"] == "uncertain") & frame[list(directions)].notna().all(axis=1)
    frame["contender"] = False
    if uncertain.any():
        points = frame.loc[uncertain, list(directions)].to_numpy(dtype=float)
        feasible = frame.loc[eligible, list(directions)].to_numpy(dtype=float)
        frame.loc[uncertain, "contender"] = ~pareto.dominated_by(
            points, feasible, list(directions.values()))
    return frame


def _judge(constraint: Constraint, record: TrialRecord, base: TrialRecord | None) -> Judgement:
    name = constraint.objective

    def by_seed(r: TrialRecord) -> dict[int, float]:
        return dict(zip(r.seeds, r.per_seed.get(name, []), strict=False))

    if base is None:
        return constraint.judge(record.objectives[name], None)
    return constraint.judge(record.objectives[name], base.objectives[name], by_seed(record),
                            by_seed(base))


def _add_intervals(frame: pd.DataFrame, by_id: dict[str, TrialRecord], names: list[str],
                   confidence: float) -> None:
    """``<name>:lo`` / ``<name>:hi`` per objective: the t-interval of the mean over seeds (NaN
    with one seed), the value itself for an objective measured once (a cost)."""
    for name in names:
        lo, hi = [], []
        for trial_id, value in zip(frame["trial_id"], frame[name], strict=True):
            values = by_id[trial_id].per_seed.get(name)
            if values is None or math.isnan(value):  # exact (a cost), or not measured
                lo.append(value)
                hi.append(value)
                continue
            interval = mean_interval(values, confidence)
            lo.append(interval.lo if interval.bounded else math.nan)
            hi.append(interval.hi if interval.bounded else math.nan)
        frame[f"{name}:lo"], frame[f"{name}:hi"] = lo, hi


def _seed_samples(records: list[TrialRecord], directions: dict[str, str]) -> np.ndarray | None:
    """``(n_seeds, n_records, n_objectives)`` per-seed values (a cost repeated), or None when
    there is nothing to resample: fewer than two seeds, or records on different seeds."""
    if not records or len(records[0].seeds) < 2:
        return None
    seeds = records[0].seeds
    if any(r.seeds != seeds for r in records):
        return None
    columns = [[r.per_seed.get(name, [r.objectives[name]] * len(seeds)) for name in directions]
               for r in records]
    return np.asarray(columns, dtype=float).transpose(2, 0, 1)


def reference_point(baseline: dict[str, float], directions: dict[str, str]) -> dict[str, float]:
    """The hypervolume reference, stated in each objective's units: 0 for maximised
    objectives, twice the baseline's value for minimised ones."""
    return {k: 0.0 if d == "max" else 2.0 * baseline[k] for k, d in directions.items()}


def front_summary(frame: pd.DataFrame, directions: dict[str, str]) -> dict[str, Any]:
    """Front members, hypervolume and its reference point. The hypervolume is computed on
    objectives divided by the baseline's (unitless; the baseline alone has a known volume);
    minimised objectives with a zero baseline are left undivided."""
    summary: dict[str, Any] = {"directions": directions, "front": [], "hypervolume": None}
    if frame.empty:
        return summary
    base = frame[frame["baseline"] & (frame["state"] == "COMPLETE")]
    front = frame[frame["pareto"]]
    summary["front"] = front["trial_id"].tolist()
    if base.empty or front.empty:
        return summary
    baseline = {k: float(base[k].iloc[0]) for k in directions}
    ref = reference_point(baseline, directions)
    scale = {k: (abs(baseline[k]) or 1.0) for k in directions}
    points = front[list(directions)].to_numpy(dtype=float) / [scale[k] for k in directions]
    ref_scaled = [ref[k] / scale[k] for k in directions]
    base_scaled = [[baseline[k] / scale[k] for k in directions]]
    summary.update({
        "baseline": baseline,
        "reference_point": ref,
        "normalized_by": "baseline",
        "hypervolume": pareto.hypervolume(points, list(directions.values()), ref_scaled),
        "baseline_hypervolume": pareto.hypervolume(base_scaled, list(directions.values()),
                                                   ref_scaled),
    })
    return summary


def sort_front(front: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Best first on the first objective (accuracy up, or an LM's loss down)."""
    first = next(iter(directions), None)
    if front.empty or first not in front:
        return front
    return front.sort_values(first, ascending=directions[first] == "min")
