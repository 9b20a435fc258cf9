"""Task configs: what to train, on what data, how, and what to measure.

A task file is flat YAML (see ``tasks/digits_vit.yaml``): every key belongs to exactly one of
the sections below, which validate themselves in ``__post_init__``. :func:`load_task` reads a
file with ``yaml.safe_load`` and reports unknown keys with their closest known spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from minsearch.models import parse_model_spec

INITS = ("parent", "scratch")
OPTIMIZERS = ("adamw", "adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
# Keys of `dataset: text` only (None elsewhere), and what a text task gets when it leaves them out.
TEXT_DEFAULTS: dict[str, Any] = {"file_pattern": "*.py", "max_chars": 300_000, "block_size": 64,
                                 "eval_windows": 256, "epoch_batches": 50}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class DataConfig:
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
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_samples: int | None = None
    data_seed: int = 0
    file_pattern: str | None = None  # the text keys: see TEXT_DEFAULTS
    max_chars: int | None = None
    block_size: int | None = None
    eval_windows: int | None = None
    epoch_batches: int | None = None

    @property
    def kind(self) -> str:
        """``text`` or ``image``: which data object :func:`minsearch.tasks.data.load_data`
        returns, and which objectives apply."""
        return "text" if self.dataset == "text" else "image"

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", tuple(float(f) for f in self.split))
        _require(len(self.split) == 3 and all(f >= 0 for f in self.split)
                 and abs(sum(self.split) - 1.0) < 1e-6 and self.split[0] > 0
                 and self.split[2] > 0,
                 f"`split` must be three non-negative fractions (train, val, test) summing to 1 "
                 f"with train and test > 0, but got {list(self.split)}; e.g. [0.6, 0.2, 0.2].")
        known = ("digits", "imagefolder", "text")
        _require(self.dataset in known or ":" in self.dataset,
                 f"`dataset` must be one of {', '.join(known)}, 'torchvision:NAME' or "
                 f"'package.module:function', but got {self.dataset!r}.")
        on_disk = self.dataset == "imagefolder" or self.dataset.startswith("torchvision:")
        _require(not on_disk or bool(self.data_root),
                 f"`dataset: {self.dataset}` reads files from disk: set `data_root` to the "
                 f"folder that holds them.")
        _require(self.image_size is None or self.image_size > 0,
                 f"`image_size` must be a positive int, but got {self.image_size}.")
        _require(self.max_samples is None or self.max_samples >= 10,
                 f"`max_samples` must be at least 10, but got {self.max_samples}.")
        _require(isinstance(self.data_kwargs, dict),
                 f"`data_kwargs` must be a mapping, but got {self.data_kwargs!r}.")
        if self.kind == "text":
            self._check_text()
            return
        set_keys = [k for k in TEXT_DEFAULTS if getattr(self, k) is not None]
        _require(not set_keys,
                 f"{', '.join(f'`{k}`' for k in set_keys)} apply to `dataset: text` only, but "
                 f"the dataset is {self.dataset!r}; remove them.")

    def _check_text(self) -> None:
        for key, default in TEXT_DEFAULTS.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)
        unused = [k for k in ("image_size", "max_samples", "data_kwargs") if getattr(self, k)]
        _require(not unused,
                 f"`dataset: text` has no use for {', '.join(f'`{k}`' for k in unused)}; remove "
                 f"them (the text keys are {', '.join(TEXT_DEFAULTS)}).")
        _require(min(self.split) > 0,
                 f"`dataset: text` needs a val and a test range: every `split` fraction must be "
                 f"> 0, but got {list(self.split)}; e.g. [0.8, 0.1, 0.1].")
        _require(isinstance(self.file_pattern, str) and bool(self.file_pattern),
                 f"`file_pattern` must be a glob such as '*.py', but got {self.file_pattern!r}.")
        for key, low in (("max_chars", 1000), ("block_size", 2), ("eval_windows", 1),
                         ("epoch_batches", 1)):
            value = getattr(self, key)
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= low,
                     f"`{key}` must be an int >= {low}, but got {value!r}.")


@dataclass(frozen=True)
class RecipeConfig:
    """How a candidate is trained.

    ``init: parent`` trains the unmodified model once per search for ``parent_epochs`` and
    starts every candidate from those weights (surgery keeps what it can), then fine-tunes it
    for ``epochs``; ``init: scratch`` trains each candidate from random weights for ``epochs``.
    """

    init: str = "parent"
    parent_epochs: int = 10
    epochs: int = 2
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    checkpoint_seconds: float = 30.0  # a trial saves a resumable checkpoint at most this often

    def __post_init__(self) -> None:
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
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1,
                     f"`{name}` must be an int >= 1, but got {value!r}.")
        _require(isinstance(self.parent_epochs, int) and self.parent_epochs >= 0,
                 f"`parent_epochs` must be an int >= 0, but got {self.parent_epochs!r}.")
        _require(self.lr > 0, f"`lr` must be > 0, but got {self.lr}.")
        _require(self.weight_decay >= 0,
                 f"`weight_decay` must be >= 0, but got {self.weight_decay}.")
        _require(self.grad_clip is None or self.grad_clip > 0,
                 f"`grad_clip` must be > 0 or null, but got {self.grad_clip}.")
        _require(0 <= self.label_smoothing < 1,
                 f"`label_smoothing` must be in [0, 1), but got {self.label_smoothing}.")


@dataclass(frozen=True)
class MeasureConfig:
    """What is measured on each trained candidate, and the knobs of those measurements."""

    objectives: tuple[str, ...] = ("accuracy", "param_bytes", "latency_ms")
    max_accuracy_drop: float | None = None
    max_loss_increase: float | None = None  # the same constraint when `loss` is first
    noise_rate: float = 0.05  # noisy_loss: fraction of input elements randomised
    latency_batch: int = 1
    latency_runs: int = 20
    latency_warmup: int = 5
    memory_batch: int = 64
    corruptions: tuple[str, ...] = ("gaussian_noise", "impulse_noise", "blur", "contrast",
                                    "brightness", "pixelate")
    severities: tuple[int, ...] = (1, 2, 3)

    @property
    def max_worsening(self) -> float | None:
        """How much worse than the baseline's the first objective may get and stay feasible
        (``max_accuracy_drop`` below it, ``max_loss_increase`` above it), or None."""
        if self.max_accuracy_drop is not None:
            return self.max_accuracy_drop
        return self.max_loss_increase

    def __post_init__(self) -> None:
        from minsearch.objectives import get_objective
        from minsearch.objectives.corruptions import get_corruption

        for attr in ("objectives", "corruptions", "severities"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        _require(len(self.objectives) >= 1 and len(set(self.objectives)) == len(
            self.objectives), f"`objectives` must list distinct objective names, but got "
                              f"{list(self.objectives)}.")
        _require(self.objectives[0] == "accuracy" or "accuracy" not in self.objectives,
                 f"`accuracy`, when measured, must be the first objective (the constraint and "
                 f"report refer to it), but got {list(self.objectives)}.")
        for name in self.objectives:
            get_objective(name)
        for name in self.corruptions:
            get_corruption(name)
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
        _require(self.max_loss_increase is None or self.objectives[0] == "loss",
                 f"`max_loss_increase` limits the first objective, so it needs `loss` first, "
                 f"but got {list(self.objectives)}; e.g. [loss, param_bytes, latency_ms].")
        _require(0 <= self.noise_rate <= 1,
                 f"`noise_rate` is a fraction of the inputs in [0, 1], but got {self.noise_rate}.")
        for name in ("latency_batch", "latency_runs", "memory_batch"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1,
                     f"`{name}` must be an int >= 1, but got {value!r}.")
        _require(isinstance(self.latency_warmup, int) and self.latency_warmup >= 0,
                 f"`latency_warmup` must be an int >= 0, but got {self.latency_warmup!r}.")


@dataclass(frozen=True)
class ResourceConfig:
    """What each trial gets from Ray, and how many run at once."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 2

    def __post_init__(self) -> None:
        _require(self.cpus_per_trial > 0,
                 f"`cpus_per_trial` must be > 0, but got {self.cpus_per_trial}.")
        _require(self.gpus_per_trial >= 0,
                 f"`gpus_per_trial` must be >= 0 (fractions share a GPU), but got "
                 f"{self.gpus_per_trial}.")
        _require(isinstance(self.max_concurrent, int) and self.max_concurrent >= 1,
                 f"`max_concurrent` must be an int >= 1, but got {self.max_concurrent!r}.")


SECTIONS = {"data": DataConfig, "recipe": RecipeConfig, "measure": MeasureConfig,
            "resources": ResourceConfig}


@dataclass(frozen=True)
class TaskConfig:
    """A whole task: a model spec plus one config per section."""

    model: str
    name: str = "task"
    data: DataConfig = field(default_factory=DataConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    resources: ResourceConfig = field(default_factory=ResourceConfig)

    def __post_init__(self) -> None:
        from minsearch.objectives import get_objective

        parse_model_spec(self.model)
        kind = self.data.kind
        wrong = [n for n in self.measure.objectives if kind not in get_objective(n).kinds]
        _require(not wrong,
                 f"Objective(s) {wrong} do not measure {kind} data (`dataset: "
                 f"{self.data.dataset}`); remove them (for text: loss, loss_p99, noisy_loss).")

    @property
    def directions(self) -> dict[str, str]:
        from minsearch.objectives import get_objective

        return {name: get_objective(name).direction for name in self.measure.objectives}

    def to_flat(self) -> dict[str, Any]:
        """The flat mapping a task file holds (``from_flat(to_flat())`` round-trips)."""
        flat: dict[str, Any] = {"name": self.name, "model": self.model}
        for section in SECTIONS:
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                flat[key] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TaskConfig:
        if not isinstance(flat, dict):
            raise ValueError(f"A task must be a mapping of keys to values, but got "
                             f"{type(flat).__name__}.")
        owner = {f.name: s for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
        known = sorted(set(owner) | {"name", "model"})
        unknown = [k for k in flat if k not in known]
        if unknown:
            hints = [f"{k!r} (did you mean {difflib.get_close_matches(k, known, 1)[0]!r}?)"
                     if difflib.get_close_matches(k, known, 1) else repr(k) for k in unknown]
            raise ValueError(f"Unknown task key(s) {', '.join(hints)}; known keys: "
                             f"{', '.join(known)}.")
        if "model" not in flat:
            raise ValueError("A task needs `model:`, e.g. 'timm:resnet18?num_classes=10'.")
        grouped: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, value in flat.items():
            if key in owner:
                grouped[owner[key]][key] = value
        try:
            sections = {s: SECTIONS[s](**grouped[s]) for s in SECTIONS}
        except TypeError as err:
            raise ValueError(f"Invalid task value: {err}") from None
        return cls(model=str(flat["model"]), name=str(flat.get("name", "task")), **sections)


def load_task(path: str | Path) -> TaskConfig:
    """Read a task YAML file (``yaml.safe_load``) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Task file {str(path)!r} does not exist.")
    flat = yaml.safe_load(path.read_text()) or {}
    if isinstance(flat, dict):
        flat.setdefault("name", path.stem)
    try:
        return TaskConfig.from_flat(flat)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
