"""Candidates: the task's model with a genome applied, starting from the parent's weights.

With ``init: parent`` the unmodified model (the *parent*) is trained once per search and
cached on disk under a key that hashes everything its training depends on. With the user's
``weights`` the parent is their model instead: loaded, evaluated as delivered (test and val
accuracy recorded), not trained (unless ``weights: {parent_epochs: N}`` fine-tunes it), and
cached under a key that includes the weights' content (:func:`~minsearch.models.weights.
weights_identity`). A candidate is
built as: fresh model -> parent weights loaded -> surgery (``apply_``), so every kept module
keeps its trained weights and every replacement starts from what its ``from_module`` copies
of the module it replaces; new parameters (gates, scales) start at their defaults.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minsearch.errors import UserError
from minsearch.layers.deploy import deploy_, deploy_problems
from minsearch.models import build_model
from minsearch.models.weights import build_with_weights, weights_identity
from minsearch.tasks.config import TEXT_DEFAULTS, RecipeConfig, TaskConfig
from minsearch.tasks.data import DataKind
from minsearch.tasks.train import check_outputs, evaluate, fit

EXPORT_FORMAT = "minsearch.candidate/1"
# Recipe keys added after parents were first cached; their defaults train as before.
LATER_RECIPE_KEYS = ("schedule", "warmup", "accumulate", "precision", "channels_last", "compile")


def example_input(data: DataKind, batch: int = 1) -> torch.Tensor:
    """A batch of real training inputs (normalised images, char codes), for tracing."""
    return data.examples(data.train, batch)[0]


def parent_key(task: TaskConfig) -> str:
    """A short hash of everything the parent's trained weights depend on."""
    recipe = task.recipe.as_dict()
    # No effect on the parent's weights: the candidates' budget and seeds, where it runs,
    # checkpoints, and distillation (the parent is the teacher, never distilled).
    for key in ("epochs", "steps", "seeds", "device", "checkpoint_seconds", "distill"):
        recipe.pop(key)
    for key in LATER_RECIPE_KEYS:  # hashed only when set: a parent cached before they existed
        if recipe[key] == RecipeConfig.model_fields[key].default:  # keeps its key
            recipe.pop(key)
    data = {k: v for k, v in task.data.as_dict().items()
            if not (k in TEXT_DEFAULTS and v is None)}  # image keys hash as they always did
    content = {"model": task.model, "data": data, "recipe": recipe, "torch": torch.__version__}
    if task.weights is not None:  # absent otherwise: the keys of other parents stay as they were
        w = task.weights
        content["weights"] = {**w.as_dict(), "file": None, "identity": weights_identity(
            w.loader, w.file, w.hf_hub_id, task.model)}  # the content, wherever it lies
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parent_model(task: TaskConfig) -> nn.Module:
    """The unmodified model: the user's weights when the task has ``weights``, else random
    weights seeded from the recipe."""
    torch.manual_seed(task.recipe.seed)
    if task.weights is None:
        return build_model(task.model)
    w = task.weights
    return build_with_weights(task.model, loader=w.loader, file=w.file, hf_hub_id=w.hf_hub_id)


def load_or_train_parent(task: TaskConfig, data: DataKind, cache_dir: str | Path,
                         device: torch.device | str = "cpu", *, key: str | None = None,
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The parent's trained state dict and facts about it, trained (or loaded from the user's
    weights and evaluated) on first use and cached in ``cache_dir/parent-<key>.pt`` (read
    back with ``weights_only=True``). A ``key`` whose file is cached is used as is: a resumed
    search keeps the parent it started with, whatever became of the weights file since."""
    if key is None or not (Path(cache_dir) / f"parent-{key}.pt").is_file():
        key = parent_key(task)
    path = Path(cache_dir) / f"parent-{key}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return blob["state_dict"], blob["info"]
    model = parent_model(task).to(device)
    check_outputs(model, data, device)
    info: dict[str, Any] = {"key": key}
    epochs = task.recipe.parent_epochs
    if task.weights is not None:
        epochs = task.weights.parent_epochs
        info["weights"] = task.weights.describe()
        info["as_delivered"] = {"test_accuracy": evaluate(model, data, data.test, device=device),
                                "val_accuracy": evaluate(model, data, data.val, device=device)
                                if len(data.val) else None}
    start = time.perf_counter()
    curves = fit(model, data, task.recipe, epochs=epochs, device=device)
    info.update(epochs=epochs, seconds=time.perf_counter() - start,
                val_accuracy=curves[-1]["val_accuracy"] if curves else None)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": state, "info": info}, tmp)
    tmp.replace(path)  # atomic: a killed search never leaves half a parent behind
    return state, info


def build_candidate(task: TaskConfig, genome: dict[str, Any] | None, data: DataKind, *,
                    parent_state: dict[str, torch.Tensor] | None = None,
                    device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the model, load the parent's weights (if any), apply ``genome`` in place.

    Returns the model on ``device`` and the resolved genome (``SurgeryReport.genome``), which
    rebuilds this exact candidate."""
    from minsearch.surgery import Genome, apply_

    torch.manual_seed(task.recipe.seed)  # same initial weights for every scratch candidate
    model = build_model(task.model)
    if parent_state is not None:
        model.load_state_dict(parent_state)
    report = apply_(model, Genome.from_json(genome or {}), example_input(data, batch=2))
    problems = deploy_problems(model, device)
    if problems:  # before any training: the measured (deployed) form could not run here
        raise UserError(f"This candidate cannot run on {device}: {problems[0]}"
                        f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                        f"remove that option from the space or run the trials where it runs.")
    model.to(device)
    return model, dict(report.genome)


def export_blob(model_spec: str, genome: dict, state_dict: dict[str, torch.Tensor],
                input_shape: tuple[int, ...], input_dtype: str = "float32",
                **extra: Any) -> dict[str, Any]:
    """Weights + genome + model spec as one mapping that ``torch.save`` writes and
    ``torch.load(weights_only=True)`` reads; :func:`load_candidate` rebuilds the module.
    ``input_dtype`` names the inputs' torch dtype (``int64`` for char codes)."""
    return {"format": EXPORT_FORMAT, "model": model_spec, "genome": genome,
            "input_shape": list(input_shape), "input_dtype": input_dtype,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, **extra}


def load_candidate(path: str | Path, map_location: str = "cpu", *,
                   deploy: bool = True) -> nn.Module:
    """Rebuild an exported candidate: ``model = load_candidate("trial.pt")``.

    An export holds the weights as trained (float, for a precision gene) and the genome;
    with ``deploy`` (the default) the model comes back in its deployed form, as measured:
    precision genes quantized again by torchao (deterministic: the same outputs as the trial's
    measured model). ``deploy=False`` gives the training form, to fine-tune further."""
    from minsearch.surgery import Genome, apply_

    blob = torch.load(path, map_location=map_location, weights_only=True)
    if blob.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path} is not a minsearch export (format {blob.get('format')!r}, "
                        f"expected {EXPORT_FORMAT!r}); write one with `minsearch export`.")
    from minsearch.surgery.fold import add_folded_biases

    model = build_model(blob["model"])
    dtype = getattr(torch, str(blob.get("input_dtype", "float32")), None)  # older: images
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"{path} names input dtype {blob.get('input_dtype')!r}, which is not a "
                        f"torch dtype; re-export it with `minsearch export`.")
    apply_(model, Genome.from_json(blob["genome"]),
           torch.zeros([2, *blob["input_shape"][1:]], dtype=dtype))
    add_folded_biases(model, blob["state_dict"])  # norm-free exports (minsearch ln-free)
    model.load_state_dict(blob["state_dict"])
    model.to(map_location)  # deployed where it will run: torchao's kernels are per device
    return (deploy_(model) if deploy else model).eval()
