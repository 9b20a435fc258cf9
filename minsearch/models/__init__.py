"""Model specs: a readable string that names a model and how to build it.

Three forms:

- ``hf:PATH_OR_TYPE`` for Hugging Face transformers models (:mod:`minsearch.models.hf`): a
  local folder (``config.json`` + weights), a model in the local cache, or a model type built
  from its config class with random weights, ``hf:llama?hidden_size=64&num_hidden_layers=2``;
  ``auto=AutoModelForCausalLM`` names the auto class;
- ``timm:NAME`` with optional keyword arguments after ``?``:
  ``timm:vit_tiny_patch16_224?img_size=32&num_classes=10&in_chans=1``;
- ``package.module:factory`` with the same optional arguments:
  ``tests.zoo:residual_mlp?width=32``. The factory must return an ``nn.Module``.

Argument values are parsed as YAML scalars (``32`` -> int, ``0.1`` -> float, ``true`` -> bool,
``[1,2]`` -> list), never evaluated.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml
from torch import nn

from minsearch.errors import UserError, user_code_error


@dataclass(frozen=True)
class ModelSpec:
    source: str  # "timm", "hf" or "factory"
    name: str  # timm model name, hf folder / cache name / model type, or "package.module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = "&".join(f"{k}={v}" for k, v in self.kwargs.items())
        head = self.name if self.source == "factory" else f"{self.source}:{self.name}"
        return f"{head}?{args}" if args else head


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``timm:NAME?k=v&...``, ``hf:NAME?k=v&...`` or ``package.module:factory?k=v&...``."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"A model spec must be 'timm:NAME', 'hf:NAME' or "
                        f"'package.module:factory', but got {spec!r}.")
    head, _, query = spec.strip().partition("?")
    kwargs: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key.isidentifier():
            raise UserError(f"Model argument {part!r} in {spec!r} must look like key=value, "
                            f"e.g. 'timm:resnet18?num_classes=10'.")
        try:
            kwargs[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            raise UserError(f"Model argument {part!r} in {spec!r} has a value that is not a YAML "
                            f"scalar or list, e.g. 'depth=2' or 'channels=[16,32]'.") from None
    if head.startswith("timm:"):
        return ModelSpec("timm", head[len("timm:"):], kwargs)
    if head.startswith("hf:"):
        if not head[len("hf:"):]:
            raise UserError(f"Model spec {spec!r} names no model; write 'hf:FOLDER', "
                            f"'hf:CACHED/NAME' or a model type such as 'hf:llama'.")
        return ModelSpec("hf", head[len("hf:"):], kwargs)
    module, colon, func = head.partition(":")
    if not colon or not module or not func.isidentifier():
        raise UserError(f"Model spec {spec!r} is neither 'timm:NAME', 'hf:NAME' nor "
                        f"'package.module:factory'.")
    return ModelSpec("factory", head, kwargs)


def build_model(spec: str | ModelSpec, *, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a spec names, with random weights, on ``device`` (``"meta"`` builds
    only the structure: fast and free, enough for site discovery)."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    with torch.device(device):
        if spec.source == "timm":
            model = _build_timm(spec)
        elif spec.source == "hf":
            from minsearch.models.hf import build_hf

            model = build_hf(spec.name, spec.kwargs)
        else:
            model = _build_factory(spec)
    if not isinstance(model, nn.Module):
        raise UserError(f"Factory {spec.name} must return a torch.nn.Module, but returned "
                        f"{type(model).__name__}.")
    from minsearch.models.hf import adapt_forward, is_hf_model

    return adapt_forward(model) if is_hf_model(model) else model


def _build_timm(spec: ModelSpec) -> nn.Module:
    import timm

    if not timm.is_model(spec.name):
        close = difflib.get_close_matches(spec.name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise UserError(f"Unknown timm model {spec.name!r}.{hint}")
    kwargs = dict(spec.kwargs)
    kwargs.setdefault("pretrained", False)
    if kwargs["pretrained"]:
        raise UserError("pretrained=true is not supported: minsearch never downloads weights. "
                        "Load your own with model.load_state_dict.")
    try:
        return timm.create_model(spec.name, **kwargs)
    except TypeError as err:
        raise UserError(f"timm model {spec.name!r} rejected its arguments {spec.kwargs}: "
                        f"{err}") from None


def _build_factory(spec: ModelSpec) -> nn.Module:
    module_name, _, func_name = spec.name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"Cannot import module {module_name!r} for model {spec.name!r} "
                        f"({err}); check the name and that it is on PYTHONPATH.") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise UserError(f"Module {module_name!r} has no callable {func_name!r} (model spec "
                        f"{spec.name!r}); the spec must name a function that returns an "
                        f"nn.Module.")
    check_arguments(factory, spec.kwargs, f"Factory {spec.name}")
    try:
        return factory(**spec.kwargs)
    except Exception as err:  # the user's own code: one line, its traceback with --debug
        raise user_code_error(f"Model factory {spec.name!r}", "while building the model",
                              err) from err


def check_arguments(func: Any, kwargs: dict[str, Any], what: str) -> None:
    """Raise a :class:`UserError` when ``func`` cannot be called with ``kwargs`` (checked on
    its signature, so a ``TypeError`` raised *inside* the user's function is not mistaken for
    a wrong argument)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # no signature to check (a builtin): the call will tell
        return
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise UserError(f"{what} rejected its arguments {kwargs}: {err}.") from None


def default_input_shape(spec: str | ModelSpec, batch: int = 1) -> tuple[int, ...] | None:
    """The input shape a model expects, when it can be known without the user saying so:
    timm's pretrained config (honouring ``img_size``/``in_chans`` arguments), or a transformers
    config (token ids, pixels or audio features)."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    if spec.source == "hf":
        from minsearch.models.hf import hf_input

        return hf_input(spec.name, spec.kwargs, batch)[0]
    if spec.source != "timm":
        return None
    import timm

    cfg = timm.get_pretrained_cfg(spec.name)
    chans, height, width = (cfg.input_size if cfg is not None else (3, 224, 224))
    img_size = spec.kwargs.get("img_size")
    if isinstance(img_size, int):
        height = width = img_size
    elif isinstance(img_size, (list, tuple)) and len(img_size) == 2:
        height, width = img_size
    chans = spec.kwargs.get("in_chans", chans)
    return (batch, int(chans), int(height), int(width))


def default_input_dtype(spec: str | ModelSpec) -> torch.dtype:
    """int64 for a transformers model reading token ids, float32 otherwise."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    if spec.source == "hf":
        from minsearch.models.hf import hf_input

        return hf_input(spec.name, spec.kwargs)[1]
    return torch.float32


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` -> ``(1, 3, 32, 32)``, with a clear error for anything else."""
    try:
        shape = tuple(int(p) for p in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise UserError(f"Input shape {text!r} must be positive integers separated by commas, "
                        f"e.g. 1,3,32,32.")
    return shape
