"""Export one trial of a run: its trained weights, genome and model spec in one file.

The file is read with ``torch.load(path, weights_only=True)`` (plain tensors, strings, lists
and dicts), and rebuilt into a module with one line::

    from minsearch.tasks.candidate import load_candidate; model = load_candidate("trial.pt")
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from minsearch.search.plan import load_plan
from minsearch.search.results import read_results

WEIGHTS = "model.pt"  # the trainable's name for the weights in a final checkpoint


def export_trial(run_dir: str | Path, trial_id: str, out: str | Path) -> Path:
    from minsearch.tasks.candidate import export_blob

    plan = load_plan(run_dir)
    frame = read_results(run_dir)
    rows = frame[frame["trial_id"].astype(str) == str(trial_id)]
    if rows.empty:
        known = ", ".join(frame["trial_id"].astype(str).head(8))
        raise ValueError(f"No trial {trial_id!r} in {run_dir}; trials: {known} … (see "
                         f"`minsearch front {run_dir}`).")
    row = rows.iloc[0]
    if row["state"] != "COMPLETE":
        raise ValueError(f"Trial {trial_id} is {row['state']}, not COMPLETE: it has no trained "
                         f"weights to export.")
    weights = Path(str(row["checkpoint"]), WEIGHTS)
    if not weights.is_file():
        raise FileNotFoundError(f"The weights of trial {trial_id} are gone ({weights}); Ray "
                                f"keeps only each trial's last checkpoint in {run_dir}/tune.")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    objectives = {k: float(row[k]) for k in plan.directions}
    blob = export_blob(plan.task.model, json.loads(row["genome"]), state,
                       tuple(plan.settings["input_shape"]),
                       plan.settings.get("input_dtype", "float32"), trial_id=str(trial_id),
                       objectives=objectives)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    return out
