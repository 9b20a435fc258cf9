"""``weights:`` of a task: the user's trained weights, which the parent starts from.

Validated like every section (:class:`~minsearch.tasks.validation.Config`); reading the file
and loading it into the model is :mod:`minsearch.models.weights`' business.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

from pydantic import field_validator, model_validator

from minsearch.errors import UserError
from minsearch.tasks.validation import Config, Integer

WEIGHT_LOADERS = ("state_dict", "timm", "hf")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


class WeightsConfig(Config):
    """The user's trained weights for the model (``weights:`` in a task): the parent is then
    this model, evaluated as delivered, and every candidate starts from it.

    ``loader``: ``state_dict`` (default) reads ``file``, a ``.pt``/``.pth``/``.bin`` state dict
    (``torch.load(weights_only=True)``; a checkpoint dict holding ``state_dict`` or ``model``
    is accepted) or a ``.safetensors`` file, into the model the spec builds; ``timm`` builds the
    model with timm's own pretrained loader, from ``file`` or from ``hf_hub_id`` in the local
    Hugging Face cache (timm adapts ``in_chans`` and drops a classifier of another size);
    ``hf`` takes the weights an ``hf:`` spec's folder or cache entry holds. ``parent_epochs``
    (default 0: as delivered) fine-tunes the parent from them first, e.g. for a new head.
    A string ``weights: FILE`` is ``{file: FILE}``."""

    what: ClassVar[str] = "weights"
    file: str | None = None
    loader: str = "state_dict"
    hf_hub_id: str | None = None
    parent_epochs: Integer = 0

    @field_validator("file", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _check(self) -> Self:
        _require(self.loader in WEIGHT_LOADERS,
                 f"`weights: {{loader}}` must be one of {', '.join(WEIGHT_LOADERS)}, but got "
                 f"{self.loader!r}.")
        sources = {"state_dict": self.file is not None and self.hf_hub_id is None,
                   "timm": (self.file is None) != (self.hf_hub_id is None),
                   "hf": self.file is None and self.hf_hub_id is None}
        _require(sources[self.loader],
                 f"`weights` with loader {self.loader} needs "
                 + {"state_dict": "`file` (a .pt, .pth, .bin or .safetensors file) and no "
                                  "`hf_hub_id`",
                    "timm": "either `file` or `hf_hub_id` (a timm weights repo in the local "
                            "Hugging Face cache)",
                    "hf": "neither `file` nor `hf_hub_id` (the weights are the hf: spec's "
                          "folder or cache entry)"}[self.loader]
                 + f", but got file {self.file!r} and hf_hub_id {self.hf_hub_id!r}.")
        _require(self.parent_epochs >= 0,
                 f"`weights: {{parent_epochs}}` must be an int >= 0, but got "
                 f"{self.parent_epochs!r}.")
        return self

    @classmethod
    def parse(cls, value: Any) -> WeightsConfig | None:
        """``weights:`` as a task file holds it: None, a file path, or a mapping."""
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            return cls(file=os.fspath(value))
        if not isinstance(value, dict):
            raise UserError(f"`weights` must be a file path or a mapping with `file`, `loader`, "
                            f"`hf_hub_id`, `parent_epochs`, but got {value!r}.")
        return cls(**value)

    def describe(self) -> str:
        """How messages name the weights: the file, the cache entry or the spec's own."""
        source = self.file or self.hf_hub_id or "the hf: spec's own"
        return source if self.loader == "state_dict" else f"{source} (via {self.loader})"
