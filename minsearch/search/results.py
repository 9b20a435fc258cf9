"""The results table and the Pareto front (files: :class:`~minsearch.search.run_dir.RunDir`).

One :class:`TrialRecord` per Ray trial; states are Optuna's words:

- ``COMPLETE``: trained and measured (the only state that can be on the front);
- ``FAILED``: raised or diverged, with its reason;
- ``PRUNED``: stopped early by the scheduler (never on the front: its values would be early);
- ``RUNNING``/``PENDING``: not finished yet (a live search, or a killed one);
- ``INTERRUPTED``: in flight when Ctrl-C or SIGTERM stopped the driver; ``minsearch resume``
  continues it from its last checkpoint.

A COMPLETE trial is *feasible* when its first objective is no worse than the baseline's by
more than the task's :class:`~minsearch.objectives.constraint.Constraint` allows (an accuracy
drop, or a language model's loss increase). The front is the non-dominated set of feasible
COMPLETE trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from minsearch import pareto
from minsearch.objectives.constraint import Constraint

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

    def to_row(self, gene_names: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"number": self.number, "trial_id": self.trial_id,
                               "state": self.state, "baseline": self.baseline}
        row.update({f"gene:{g}": self.params.get(g, "") for g in gene_names})
        row.update(self.objectives)
        row.update(self.extras)
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
    elif last.get("final"):
        record.state = "COMPLETE"
        record.objectives = {k: float(last[k]) for k in objectives}
        record.extras = {k: float(v) for k, v in last.items() if k.startswith("corruption/")}
        record.genome = str(last.get("genome", ""))
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
    """One row per trial with ``feasible``, ``rank`` (Pareto rank among feasible COMPLETE
    trials, -1 elsewhere) and ``pareto`` columns. ``constraint`` limits how much worse than
    the baseline's its objective (the first of ``directions``) may be."""
    records = sorted(records, key=lambda r: r.number)
    frame = pd.DataFrame([r.to_row(gene_names) for r in records])
    if frame.empty:
        return frame
    for name in directions:
        if name not in frame:
            frame[name] = math.nan
    complete = frame["state"] == "COMPLETE"
    frame["feasible"] = complete
    base = frame[frame["baseline"] & complete]
    if constraint.max_worsening is not None and len(base):
        name = constraint.objective
        frame["feasible"] = complete & constraint.feasible(frame[name],
                                                           float(base[name].iloc[0]))
    frame["rank"] = -1
    eligible = frame["feasible"] & frame[list(directions)].notna().all(axis=1)
    if eligible.any():
        values = frame.loc[eligible, list(directions)].to_numpy(dtype=float)
        frame.loc[eligible, "rank"] = pareto.non_dominated_sort(values, list(directions.values()))
    frame["pareto"] = frame["rank"] == 0
    return frame


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
