"""Hugging Face transformers models: build one from an ``hf:`` spec, and call it like any model.

``hf:NAME?k=v&...`` resolves NAME, in this order (nothing is ever downloaded, and
``trust_remote_code`` is never enabled):

1. a local folder holding ``config.json``: the config (with ``k=v`` overrides) and, when the
   folder has weights and the model is not built on the meta device, the weights;
2. a model type of transformers (``llama``, ``gpt2``, ``bert``, ``vit``, ``whisper``...): its
   config class with ``k=v`` overrides and random weights, e.g.
   ``hf:llama?hidden_size=64&num_hidden_layers=2`` (a 7B LLaMA without overrides);
3. a name in the local Hugging Face cache (``org/model``), as ``from_pretrained`` finds it
   with ``local_files_only=True``.

Reserved keys: ``auto`` names the auto class (``auto=AutoModelForCausalLM``; default: chosen
from the config), ``attn_implementation`` picks transformers' attention (default: its own).

:func:`adapt_forward` lets minsearch call the model as ``model(x)`` (``x`` the model's main
input: token ids, pixels or audio features) and get a tensor back (the logits); any other call
— keywords, ``generate()``, the whole transformers API — reaches the model's own ``forward``.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minsearch.errors import UserError

RESERVED = ("auto", "attn_implementation")
_AUTO_ORDER = (  # (mapping of model types, auto class), tried in order for a bare config
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "AutoModelForSeq2SeqLM"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "AutoModelForSpeechSeq2Seq"),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "AutoModelForMaskedLM"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "AutoModelForCausalLM"),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "AutoModelForImageClassification"),
)
TOKENS = 16  # tokens of a default example input


def is_hf_model(model: object) -> bool:
    """True for a transformers ``PreTrainedModel`` (checked without importing transformers)."""
    if "transformers" not in sys.modules:
        return False
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def build_hf(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The model an ``hf:`` spec names (see the module docstring); built on the current
    default device (``meta`` builds the structure only)."""
    import transformers

    kwargs = dict(kwargs)
    auto_name = kwargs.pop("auto", None)
    attn = kwargs.pop("attn_implementation", None)
    config, weights = resolve_config(name, kwargs)
    if attn is not None:
        config._attn_implementation = str(attn)
    auto = auto_class_for(transformers, config, auto_name)
    on_meta = torch.empty(0).device.type == "meta"
    if weights is not None and not on_meta:
        return auto.from_pretrained(weights, config=config, local_files_only=True,
                                    trust_remote_code=False)
    try:
        return auto.from_config(config, trust_remote_code=False)
    except ValueError as err:  # the auto class has no model for this config
        raise UserError(f"hf:{name}: {auto.__name__} cannot build a {type(config).__name__} "
                        f"({str(err).splitlines()[0]}); name another with auto=..., e.g. "
                        f"auto=AutoModel.") from None


def resolve_config(name: str, overrides: dict[str, Any]) -> tuple[Any, str | None]:
    """(config with overrides, where weights can be loaded from or None)."""
    from transformers import CONFIG_MAPPING, AutoConfig

    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        config = AutoConfig.from_pretrained(folder, local_files_only=True,
                                            trust_remote_code=False)
        has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
        return _override(type(config), config.to_dict(), overrides, name), \
            str(folder) if has_weights else None
    if folder.exists() or name.startswith((".", "/", "~")):  # a path, not a cache name
        raise UserError(f"hf:{name}: the folder has no config.json; point at a folder saved "
                        f"with save_pretrained().")
    if name in CONFIG_MAPPING:
        return _override(CONFIG_MAPPING[name], {}, overrides, name), None
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True, trust_remote_code=False)
    except OSError:
        close = difflib.get_close_matches(name, list(CONFIG_MAPPING.keys()), n=3, cutoff=0.7)
        hint = f" Close model types: {', '.join(close)}." if close else ""
        raise UserError(f"hf:{name} is not a local folder with config.json, not a transformers "
                        f"model type (e.g. hf:llama) and not in the local Hugging Face cache; "
                        f"minsearch never downloads.{hint}") from None
    return _override(type(config), config.to_dict(), overrides, name), name


def _override(config_cls: type, base: dict[str, Any], overrides: dict[str, Any],
              name: str) -> Any:
    """The config built from ``base`` with ``overrides`` (through the constructor, so derived
    values such as ``head_dim`` follow). A key neither the config class nor generation knows
    is an error: config classes accept any keyword silently, so a typo would change nothing."""
    from transformers import GenerationConfig

    defaults = config_cls()
    known = set(defaults.to_dict()) | set(GenerationConfig().to_dict()) | set(base)
    for key in overrides:
        if key not in known and not hasattr(defaults, key):  # num_labels is a property
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"hf:{name}: {config_cls.__name__} has no key {key!r}.{hint}")
    return config_cls(**{**base, **overrides})


def auto_class_for(transformers: Any, config: Any, auto_name: str | None) -> Any:
    if auto_name is not None:
        auto = getattr(transformers, str(auto_name), None)
        if auto is None or not str(auto_name).startswith("AutoModel"):
            raise UserError(f"auto={auto_name!r} is not a transformers auto class; use one such "
                            f"as AutoModelForCausalLM, AutoModelForMaskedLM or AutoModel.")
        return auto
    from transformers.models.auto import modeling_auto

    model_type = getattr(config, "model_type", "")
    for mapping, auto in _AUTO_ORDER:
        if model_type in getattr(modeling_auto, mapping):
            return getattr(transformers, auto)
    return transformers.AutoModel


def hf_input(name: str, kwargs: dict[str, Any], batch: int = 1
             ) -> tuple[tuple[int, ...], torch.dtype]:
    """(shape, dtype) of an example input for the model an ``hf:`` spec names."""
    config, _ = resolve_config(name, {k: v for k, v in kwargs.items() if k not in RESERVED})
    return input_of_config(config, batch)


def input_of_config(config: Any, batch: int = 1) -> tuple[tuple[int, ...], torch.dtype]:
    """Audio features ``(B, mels, frames)``, pixels ``(B, C, H, W)`` or token ids ``(B, T)``."""
    if hasattr(config, "num_mel_bins"):
        frames = 2 * int(getattr(config, "max_source_positions", 1500))
        return (batch, int(config.num_mel_bins), frames), torch.float32
    if hasattr(config, "image_size") and hasattr(config, "num_channels"):
        size = config.image_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (batch, int(config.num_channels), int(h), int(w)), torch.float32
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions",
                                                                        None)
    return (batch, min(TOKENS, int(limit or TOKENS))), torch.int64


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random input of the right kind for a transformers model (tests, probes)."""
    shape, dtype = input_of_config(model.config, batch)
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.int64:
        return torch.randint(0, int(model.config.vocab_size), shape, generator=g)
    return torch.randn(shape, generator=g)


class TensorForward:
    """``model(x) -> logits`` for a transformers model, installed as the instance's
    ``forward``. A single tensor argument is the model's main input; every other call (the
    transformers API: keywords, ``generate()``) goes to the class's own ``forward``.

    Encoder-decoder models get decoder inputs: the token ids themselves (teacher forcing on the
    same sequence), or four decoder-start tokens for pixel/audio inputs. Causal LMs run without
    a KV cache (``use_cache=False``): training and scoring do not need one.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        own = type(model).forward.__get__(model)
        if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            return own(*args, **kwargs)
        x = args[0]
        inputs: dict[str, Any] = {model.main_input_name: x}
        config = model.config
        if getattr(config, "is_encoder_decoder", False):
            if x.dtype.is_floating_point:
                start = getattr(config, "decoder_start_token_id", None) or 0
                inputs["decoder_input_ids"] = torch.full((x.shape[0], 4), int(start),
                                                         dtype=torch.long, device=x.device)
            else:
                inputs["decoder_input_ids"] = x
        if getattr(config, "use_cache", False):
            inputs["use_cache"] = False
        out = own(**inputs)
        for field in ("logits", "last_hidden_state"):
            value = getattr(out, field, None)
            if isinstance(value, torch.Tensor):
                return value
        return out[0]

    def __deepcopy__(self, memo: dict) -> TensorForward:
        import copy

        return TensorForward(copy.deepcopy(self.model, memo))

    def __reduce__(self):
        return (TensorForward, (self.model,))

    def __repr__(self) -> str:
        return f"TensorForward({type(self.model).__name__})"


def adapt_forward(model: nn.Module) -> nn.Module:
    """Install :class:`TensorForward` on a transformers model (in place; returns it)."""
    if not isinstance(model.__dict__.get("forward"), TensorForward):
        model.__dict__["forward"] = TensorForward(model)
    return model
