"""Task configs: what to train, on what data, how, and what to measure.

A task file is flat YAML (see ``tasks/digits_vit.yaml``): every key belongs to exactly one of
the sections below. Each section is a frozen pydantic model
(:class:`~minsearch.tasks.validation.Config`): pydantic checks each key's type (and turns YAML
1.1's ``lr: 3e-3``, a string, into a number), then the section's own rules run (ranges,
choices, keys that need each other). Every mistake is a one-line
:class:`~minsearch.errors.UserError` naming the key, the value and what is expected; unknown
keys are reported with their closest known spelling. :func:`load_task` reads a file.

Which objectives and corruptions exist is the objective registry's business, checked by
:func:`minsearch.objectives.check_task`, not here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from minsearch.errors import UserError
from minsearch.models import parse_model_spec
from minsearch.tasks.validation import Config, Integer, Number, join_messages, unknown_keys
from minsearch.tasks.weights_config import WeightsConfig
from minsearch.yamlio import read_yaml

INITS = ("parent", "scratch")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CHANNELS_LAST = ("auto", True, False)
STEP_ROUNDS = 10  # a `steps:` budget reports progress this many times (RecipeConfig.rounds)
OPTIMIZERS = ("adamw", "adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
# `dataset: density:NAME` (flow tasks, minsearch.tasks.density_data): 2-D sets and digits.
DENSITY_SETS = ("moons", "circles", "8gaussians", "checkerboard", "digits")
# Keys of `dataset: text` only (None elsewhere), and what a text task gets when it leaves them out.
# Keys of streamed image data (imagefolder, torchvision:NAME, a function returning a dataset).
STREAM_KEYS = ("train_transform", "eval_transform", "mean", "std")
# One transform step: a torchvision.transforms name, or {name: kwargs} (kwargs a mapping, or
# one positional value such as `Resize: 32`).
Transform = str | dict[str, Any]
TEXT_DEFAULTS: dict[str, Any] = {"file_pattern": "*.py", "max_chars": 300_000, "block_size": 64,
                                 "eval_windows": 256, "epoch_batches": 50}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


class DataConfig(Config):
    """Where the examples come from and how they are split.

    ``dataset`` is ``digits`` (scikit-learn's bundled 8x8 digits), ``imagefolder`` (an
    ImageFolder tree at ``data_root``), ``torchvision:NAME`` (e.g. ``torchvision:CIFAR10``
    under ``data_root``, never downloaded) or ``package.module:function``: images. Or
    ``text``: characters of the files matching ``file_pattern`` under ``data_root`` (default:
    the Python standard library's sources), at most ``max_chars``, cut into contiguous
    train/val/test ranges; the model reads ``block_size`` characters and predicts the next
    one. A text "epoch" is ``epoch_batches`` batches of random windows of the training range;
    evaluation uses ``eval_windows`` fixed, evenly spaced windows of a range.
    """

    dataset: str = "digits"
    data_root: str | None = None
    data_kwargs: dict[str, Any] = Field(default_factory=dict)
    image_size: Integer | None = None
    split: tuple[float, ...] = (0.6, 0.2, 0.2)
    max_samples: Integer | None = None
    eval_samples: Integer | None = None  # at most this many val and test examples
    data_seed: Integer = 0
    # Streamed image data only (minsearch.tasks.stream): DataLoader workers, transforms
    # ([{Name: kwargs}] of torchvision.transforms, PIL -> PIL or tensor), normalisation.
    num_workers: Integer = 2
    train_transform: tuple[Transform, ...] | None = None
    eval_transform: tuple[Transform, ...] | None = None
    mean: tuple[Number, ...] | None = None
    std: tuple[Number, ...] | None = None
    file_pattern: str | None = None  # the text keys: see TEXT_DEFAULTS
    max_chars: Integer | None = None
    block_size: Integer | None = None
    eval_windows: Integer | None = None
    epoch_batches: Integer | None = None

    @property
    def kind(self) -> str:
        """``text``, ``density`` (``density:NAME``: flow tasks) or ``image``: which data object
        :func:`minsearch.tasks.data.load_data` returns, and which objectives apply."""
        if self.dataset.startswith("density:"):
            return "density"
        return "text" if self.dataset == "text" else "image"

    @field_validator("data_root", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("train_transform", "eval_transform", mode="after")
    @classmethod
    def _steps(cls, steps: tuple[Transform, ...] | None) -> tuple[Transform, ...] | None:
        for step in steps or ():
            if isinstance(step, dict) and len(step) != 1:
                raise ValueError(
                    f"A transform step is one name or one {{name: arguments}} mapping, but got "
                    f"{step!r}; write one list item per step, e.g. [{{Resize: 36}}, "
                    f"{{CenterCrop: 32}}].")
        return steps

    @model_validator(mode="before")
    @classmethod
    def _text_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("dataset") == "text":
            values = {**values, **{k: default for k, default in TEXT_DEFAULTS.items()
                                   if values.get(k) is None}}
        return values

    @model_validator(mode="after")
    def _check(self) -> Self:
        _require(len(self.split) == 3 and all(f >= 0 for f in self.split)
                 and abs(sum(self.split) - 1.0) < 1e-6 and self.split[0] > 0
                 and self.split[2] > 0,
                 f"`split` must be three non-negative fractions (train, val, test) summing to 1 "
                 f"with train and test > 0, but got {list(self.split)}; e.g. [0.6, 0.2, 0.2].")
        known = ("digits", "imagefolder", "text")
        _require(self.dataset in known or ":" in self.dataset,
                 f"`dataset` must be one of {', '.join(known)}, 'torchvision:NAME' or "
                 f"'package.module:function', but got {self.dataset!r}.")
        density = self.dataset.partition(":")[2] if self.kind == "density" else None
        _require(density is None or density in DENSITY_SETS,
                 f"`dataset: density:NAME` needs NAME in {', '.join(DENSITY_SETS)}, but got "
                 f"{self.dataset!r}.")
        on_disk = self.dataset == "imagefolder" or self.dataset.startswith("torchvision:")
        _require(not on_disk or bool(self.data_root),
                 f"`dataset: {self.dataset}` reads files from disk: set `data_root` to the "
                 f"folder that holds them.")
        _require(self.image_size is None or self.image_size > 0,
                 f"`image_size` must be a positive int, but got {self.image_size}.")
        _require(self.max_samples is None or self.max_samples >= 10,
                 f"`max_samples` must be at least 10, but got {self.max_samples}.")
        _require(self.eval_samples is None or self.eval_samples >= 1,
                 f"`eval_samples` must be an int >= 1, but got {self.eval_samples}.")
        _require(self.num_workers >= 0,
                 f"`num_workers` must be an int >= 0 (0: read in the main process), but got "
                 f"{self.num_workers}.")
        _require((self.mean is None) == (self.std is None) and (
            self.std is None or (len(self.mean) == len(self.std) and min(self.std) > 0)),
                 f"`mean` and `std` go together, one value per channel (or one for all), with "
                 f"every std > 0, but got mean {self.mean} and std {self.std}; e.g. mean: "
                 f"[0.485, 0.456, 0.406] and std: [0.229, 0.224, 0.225].")
        if self.kind == "text":
            self._check_text()
            return self
        set_keys = [k for k in TEXT_DEFAULTS if getattr(self, k) is not None]
        _require(not set_keys,
                 f"{', '.join(f'`{k}`' for k in set_keys)} apply to `dataset: text` only, but "
                 f"the dataset is {self.dataset!r}; remove them.")
        return self

    def _check_text(self) -> None:
        unused = [k for k in ("image_size", "max_samples", "data_kwargs", "eval_samples",
                              *STREAM_KEYS) if getattr(self, k)]
        _require(not unused,
                 f"`dataset: text` has no use for {', '.join(f'`{k}`' for k in unused)}; remove "
                 f"them (the text keys are {', '.join(TEXT_DEFAULTS)}).")
        _require(min(self.split) > 0,
                 f"`dataset: text` needs a val and a test range: every `split` fraction must be "
                 f"> 0, but got {list(self.split)}; e.g. [0.8, 0.1, 0.1].")
        _require(bool(self.file_pattern),
                 f"`file_pattern` must be a glob such as '*.py', but got {self.file_pattern!r}.")
        for key, low in (("max_chars", 1000), ("block_size", 2), ("eval_windows", 1),
                         ("epoch_batches", 1)):
            value = getattr(self, key)
            _require(value >= low, f"`{key}` must be an int >= {low}, but got {value!r}.")


class DistillConfig(Config):
    """``distill: {weight: W, temperature: T}``: a candidate learns from the unmodified parent
    as well as from the labels, with the loss ``(1-W)*CE + W*T^2*KL(softmax(teacher/T) ||
    softmax(student/T))`` (Hinton et al. 2015; the T^2 keeps the soft term's gradients at the
    scale of CE's as T changes). Needs ``init: parent``: the teacher is the parent."""

    weight: Number = 0.5
    temperature: Number = 2.0

    @model_validator(mode="before")
    @classmethod
    def _known(cls, values: Any) -> Any:
        if isinstance(values, dict) and (unknown := set(values) - set(cls.model_fields)):
            raise UserError(unknown_keys(sorted(unknown), cls.model_fields, "`distill`"))
        return values

    @model_validator(mode="after")
    def _check(self) -> Self:
        _require(0 <= self.weight <= 1,
                 f"`distill.weight` is the share of the distillation term in [0, 1] (0: labels "
                 f"only, 1: the parent's soft targets only), but got {self.weight}.")
        _require(self.temperature > 0,
                 f"`distill.temperature` must be > 0 (1: the parent's own probabilities, "
                 f"higher: softer), but got {self.temperature}.")
        return self


class RecipeConfig(Config):
    """How a candidate is trained.

    ``init: parent`` trains the unmodified model once per search for ``parent_epochs`` and
    starts every candidate from those weights (surgery keeps what it can), then fine-tunes it
    for ``epochs`` (or ``steps``: optimiser steps, for data too large to count in epochs);
    ``init: scratch`` trains each candidate from random weights for that budget.

    The recipe (:mod:`minsearch.tasks.trainer`): ``schedule`` (``constant`` or ``cosine``
    decay to 0 at the end of the budget) after ``warmup`` (a linear ramp: ``warmup >= 1`` is a
    number of optimiser steps, ``warmup < 1`` a fraction of the budget); ``accumulate`` N
    batches of ``batch_size`` per optimiser step; ``precision`` of the forward pass (``auto``:
    bf16 autocast on CUDA, fp32 on the CPU; ``fp16`` adds a grad scaler); ``channels_last``
    (``auto``: for convnets on CUDA); ``compile`` (``torch.compile`` the training forward);
    ``distill`` (:class:`DistillConfig`).

    ``seeds``: how many times each candidate (and the baseline) is trained, each time with
    another training seed: a count ``n`` means ``seed, seed + 1, ..., seed + n - 1``; a list
    names the seeds. The parent is trained once, with ``seed``.
    """

    init: str = "parent"
    parent_epochs: Integer = 10
    epochs: Integer | None = None  # 2 when `steps` is not set either
    steps: Integer | None = None
    batch_size: Integer = 64
    optimizer: str = "adamw"
    lr: Number = 3e-3
    weight_decay: Number = 0.01
    momentum: Number = 0.9
    grad_clip: Number | None = 1.0
    label_smoothing: Number = 0.0
    schedule: str = "constant"
    warmup: Number = 0
    accumulate: Integer = 1
    precision: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    distill: DistillConfig | None = None
    seed: Integer = 0
    seeds: Integer | tuple[Integer, ...] = 1
    device: str = "auto"
    checkpoint_seconds: Number = 30.0  # a trial saves a resumable checkpoint at most this often

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        def integer(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        ok = integer(value) or (isinstance(value, list | tuple) and all(map(integer, value)))
        _require(ok, f"`seeds` must be a count (e.g. 3) or a list of integer seeds (e.g. "
                     f"[0, 1, 2]), but got {value!r} ({type(value).__name__}).")
        return value

    @property
    def rounds(self) -> int:
        """How many times a trial reports progress (a curve point, maybe a checkpoint; ASHA's
        time unit): once per epoch, or :data:`STEP_ROUNDS` times over a ``steps`` budget."""
        return self.epochs if self.steps is None else min(self.steps, STEP_ROUNDS)

    @model_validator(mode="before")
    @classmethod
    def _budget(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        epochs, steps = values.get("epochs"), values.get("steps")
        if epochs is not None and steps is not None:
            raise UserError(f"Give the training budget as `epochs` or as `steps`, not both, "
                            f"but got epochs={epochs!r} and steps={steps!r}; remove one.")
        return values if steps is not None else {**values, "epochs": 2 if epochs is None
                                                 else epochs}

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The training seeds of every candidate, in the order they are trained."""
        if isinstance(self.seeds, int):
            return tuple(range(self.seed, self.seed + self.seeds))
        return tuple(self.seeds)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if isinstance(self.seeds, int):
            _require(self.seeds >= 1, f"`seeds` must be a count >= 1 or a list of seeds, but "
                                      f"got {self.seeds}; e.g. `seeds: 3` (seeds {self.seed}, "
                                      f"{self.seed + 1}, {self.seed + 2}).")
        else:
            _require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds),
                     f"`seeds` as a list must name distinct seeds, but got {list(self.seeds)}; "
                     f"e.g. `seeds: [0, 1, 2]` or a count, `seeds: 3`.")
        _require(self.checkpoint_seconds >= 0,
                 f"`checkpoint_seconds` must be >= 0 (0: after every epoch), but got "
                 f"{self.checkpoint_seconds}.")
        _require(self.init in INITS,
                 f"`init` must be one of {', '.join(INITS)}, but got {self.init!r}.")
        _require(self.optimizer in OPTIMIZERS,
                 f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, but got "
                 f"{self.optimizer!r}.")
        _require(self.device in DEVICES,
                 f"`device` must be one of {', '.join(DEVICES)}, but got {self.device!r}.")
        for name in ("epochs", "steps", "batch_size", "accumulate"):
            value = getattr(self, name)
            _require(value is None or value >= 1,
                     f"`{name}` must be an int >= 1, but got {value!r}.")
        _require(self.parent_epochs >= 0,
                 f"`parent_epochs` must be an int >= 0, but got {self.parent_epochs!r}.")
        _require(self.lr > 0, f"`lr` must be > 0, but got {self.lr}.")
        _require(self.weight_decay >= 0,
                 f"`weight_decay` must be >= 0, but got {self.weight_decay}.")
        _require(self.grad_clip is None or self.grad_clip > 0,
                 f"`grad_clip` must be > 0 or null, but got {self.grad_clip}.")
        _require(0 <= self.label_smoothing < 1,
                 f"`label_smoothing` must be in [0, 1), but got {self.label_smoothing}.")
        self._check_recipe()
        return self

    def _check_recipe(self) -> None:
        """The schedule, precision and distillation keys."""
        for key, known in (("schedule", SCHEDULES), ("precision", PRECISIONS),
                           ("channels_last", CHANNELS_LAST)):
            value = getattr(self, key)
            _require(value in known,
                     f"`{key}` must be one of {', '.join(str(k).lower() for k in known)}, but "
                     f"got {value!r}.")
        _require(self.warmup >= 0 and (self.warmup < 1 or float(self.warmup).is_integer()),
                 f"`warmup` is a number of optimiser steps (a whole number >= 1) or a fraction "
                 f"of the budget in [0, 1), but got {self.warmup}; e.g. 100 or 0.05.")
        _require(self.steps is None or self.warmup < max(1, self.steps),
                 f"`warmup: {self.warmup}` steps leaves nothing of the `steps: {self.steps}` "
                 f"budget; make it shorter (e.g. a fraction: 0.05).")
        _require(self.distill is None or self.init == "parent",
                 f"`distill` learns from the parent, so it needs `init: parent`, but got "
                 f"`init: {self.init}`; set `init: parent` or remove `distill`.")


# Budget keys of the task and the cost objective each limits (measured before training).
BUDGETS = {"max_param_bytes": "param_bytes", "max_flops": "flops",
           "max_peak_mem_infer_bytes": "peak_mem_infer_bytes"}


class MeasureConfig(Config):
    """What is measured on each trained candidate, and the knobs of those measurements.

    Which names exist in ``objectives`` and ``corruptions``, and whether the objectives fit
    the data, is checked against the registries by :func:`minsearch.objectives.check_task`."""

    objectives: tuple[str, ...] = ("accuracy", "param_bytes", "latency_ms")
    max_accuracy_drop: Number | None = None
    max_loss_increase: Number | None = None  # the same constraint when `loss` is first
    confidence: Number = 0.9  # of the intervals that judge the constraint (two-sided)
    max_param_bytes: Number | None = None  # budgets: a candidate over one is not trained
    max_flops: Number | None = None
    max_peak_mem_infer_bytes: Number | None = None
    max_inversion_error: Number | None = None  # flows: a larger inversion_error fails the trial
    noise_rate: Number = 0.05  # noisy_loss: fraction of input elements randomised
    latency_batch: Integer = 1
    latency_runs: Integer = 20
    latency_warmup: Integer = 5
    memory_batch: Integer = 64
    corruptions: tuple[str, ...] = ("gaussian_noise", "impulse_noise", "blur", "contrast",
                                    "brightness", "pixelate")
    severities: tuple[Integer, ...] = (1, 2, 3)

    @property
    def max_worsening(self) -> float | None:
        """How much worse than the baseline's the first objective may get and stay feasible
        (``max_accuracy_drop`` below it, ``max_loss_increase`` above it), or None."""
        if self.max_accuracy_drop is not None:
            return self.max_accuracy_drop
        return self.max_loss_increase

    @property
    def budgets(self) -> dict[str, float]:
        """``{cost objective: largest allowed value}`` of the budgets the task sets."""
        limits = {name: getattr(self, key) for key, name in BUDGETS.items()}
        return {name: float(limit) for name, limit in limits.items() if limit is not None}

    @model_validator(mode="after")
    def _check(self) -> Self:
        _require(0.5 <= self.confidence < 1,
                 f"`confidence` is the two-sided confidence of the intervals that judge "
                 f"the constraint, in [0.5, 1), but got {self.confidence}; e.g. 0.9.")
        for key in BUDGETS:
            value = getattr(self, key)
            _require(value is None or value > 0,
                     f"`{key}` is a budget: a candidate above it is not trained; it must be "
                     f"> 0 or left out, but got {value}.")
        _require(len(self.objectives) >= 1 and len(set(self.objectives)) == len(
            self.objectives), f"`objectives` must list distinct objective names, but got "
                              f"{list(self.objectives)}.")
        _require(self.objectives[0] == "accuracy" or "accuracy" not in self.objectives,
                 f"`accuracy`, when measured, must be the first objective (the constraint and "
                 f"report refer to it), but got {list(self.objectives)}.")
        _require(all(s in (1, 2, 3) for s in self.severities) and self.severities,
                 f"`severities` must be a non-empty subset of [1, 2, 3], but got "
                 f"{list(self.severities)}.")
        _require(self.max_accuracy_drop is None or 0 <= self.max_accuracy_drop <= 1,
                 f"`max_accuracy_drop` is a fraction of accuracy in [0, 1] (0.01 = one point), "
                 f"but got {self.max_accuracy_drop}.")
        _require(self.max_accuracy_drop is None or "accuracy" in self.objectives,
                 "`max_accuracy_drop` needs `accuracy` among the objectives.")
        _require(self.max_loss_increase is None or self.max_loss_increase >= 0,
                 f"`max_loss_increase` is an increase of the loss in nats (0.05 = 0.05 nats per "
                 f"character), so it must be >= 0, but got {self.max_loss_increase}.")
        _require(self.max_inversion_error is None or (
            self.max_inversion_error >= 0 and "inversion_error" in self.objectives),
                 f"`max_inversion_error` limits the objective `inversion_error` (max |x - "
                 f"f^-1(f(x))|), so it must be >= 0 with `inversion_error` among the "
                 f"objectives, but got {self.max_inversion_error} and {list(self.objectives)}.")
        _require(self.max_loss_increase is None or self.objectives[0] == "loss",
                 f"`max_loss_increase` limits the first objective, so it needs `loss` first, "
                 f"but got {list(self.objectives)}; e.g. [loss, param_bytes, latency_ms].")
        _require(0 <= self.noise_rate <= 1,
                 f"`noise_rate` is a fraction of the inputs in [0, 1], but got {self.noise_rate}.")
        for name in ("latency_batch", "latency_runs", "memory_batch"):
            value = getattr(self, name)
            _require(value >= 1, f"`{name}` must be an int >= 1, but got {value!r}.")
        _require(self.latency_warmup >= 0,
                 f"`latency_warmup` must be an int >= 0, but got {self.latency_warmup!r}.")
        return self


class ResourceConfig(Config):
    """What each trial gets from Ray, and how many run at once."""

    cpus_per_trial: Number = 1.0
    gpus_per_trial: Number = 0.0
    max_concurrent: Integer = 2

    @model_validator(mode="after")
    def _check(self) -> Self:
        _require(self.cpus_per_trial > 0,
                 f"`cpus_per_trial` must be > 0, but got {self.cpus_per_trial}.")
        _require(self.gpus_per_trial >= 0,
                 f"`gpus_per_trial` must be >= 0 (fractions share a GPU), but got "
                 f"{self.gpus_per_trial}.")
        _require(self.max_concurrent >= 1,
                 f"`max_concurrent` must be an int >= 1, but got {self.max_concurrent!r}.")
        return self


SECTIONS: dict[str, type[Config]] = {"data": DataConfig, "recipe": RecipeConfig,
                                      "measure": MeasureConfig, "resources": ResourceConfig}


class TaskConfig(Config):
    """A whole task: a model spec plus one config per section."""

    model: str
    name: str = "task"
    weights: WeightsConfig | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    recipe: RecipeConfig = Field(default_factory=RecipeConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    resources: ResourceConfig = Field(default_factory=ResourceConfig)

    @model_validator(mode="after")
    def _check(self) -> Self:
        spec = parse_model_spec(self.model)
        if self.weights is not None:
            loader = self.weights.loader
            _require(loader == "state_dict" or loader == spec.source,
                     f"`weights` with loader {loader} needs a {loader}: model, but the model is "
                     f"{self.model!r}; use `loader: state_dict` (a state-dict file) for it.")
        if self.weights is not None and self.recipe.init != "parent":
            raise UserError(f"`weights` are the parent every candidate starts from, so they "
                            f"need `init: parent`, but got `init: {self.recipe.init}`.")
        _require(self.recipe.distill is None or self.data.kind != "density",
                 f"`distill` matches a classifier's output probabilities; a density model "
                 f"(`dataset: {self.data.dataset}`) has none: remove `distill`.")
        return self

    def to_flat(self) -> dict[str, Any]:
        """The flat mapping a task file holds (``from_flat(to_flat())`` round-trips)."""
        flat: dict[str, Any] = {"name": self.name, "model": self.model}
        if self.weights is not None:
            flat["weights"] = self.weights.as_dict()
        for section in SECTIONS:
            for key, value in getattr(self, section).as_dict().items():
                flat[key] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TaskConfig:
        """Validate a flat mapping (a task file's content); every section's mistakes are
        reported together, in one line."""
        if not isinstance(flat, dict):
            raise UserError(f"A task must be a mapping of keys to values, but got "
                            f"{type(flat).__name__}.")
        owner = {key: s for s, c in SECTIONS.items() for key in c.model_fields}
        known = set(owner) | {"name", "model", "weights"}
        unknown = [k for k in flat if k not in known]
        if unknown:
            raise UserError(unknown_keys(unknown, known, "task"))
        if "model" not in flat:
            raise UserError("A task needs `model:`, e.g. 'timm:resnet18?num_classes=10'.")
        grouped: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, value in flat.items():
            if key in owner:
                grouped[owner[key]][key] = value
        sections: dict[str, Any] = {}
        errors = []
        for section, config in SECTIONS.items():
            try:
                sections[section] = config(**grouped[section])
            except UserError as err:
                errors.append(str(err))
        try:
            sections["weights"] = WeightsConfig.parse(flat.get("weights"))
        except UserError as err:
            errors.append(str(err))
        if errors:
            raise UserError(join_messages(errors))
        return cls(model=str(flat["model"]), name=str(flat.get("name", "task")), **sections)


def load_task(path: str | Path) -> TaskConfig:
    """Read a task YAML file (``yaml.safe_load``) and validate it; mistakes are one-line
    :class:`UserError` s that start with the file's path. Relative paths in it are relative
    to the working directory (they are stored absolute)."""
    path = Path(path)
    flat = read_yaml(path, "task file")
    flat = {} if flat is None else flat
    if isinstance(flat, dict):
        flat.setdefault("name", path.stem)
    try:
        return _absolute_paths(TaskConfig.from_flat(flat))
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def _absolute_paths(task: TaskConfig) -> TaskConfig:
    """``data_root`` and ``weights: {file}`` made absolute (relative to the working
    directory): trials run elsewhere (Ray gives each its own folder), and so may a resume."""
    data, weights = task.data, task.weights
    if data.data_root is not None:
        data = data.replace(data_root=str(Path(data.data_root).expanduser().absolute()))
    if weights is not None and weights.file is not None:
        weights = weights.replace(file=str(Path(weights.file).expanduser().absolute()))
    return task.model_copy(update={"data": data, "weights": weights})
