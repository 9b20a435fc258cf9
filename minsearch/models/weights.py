"""The user's trained weights: read a file, check it fits the model a spec builds, load it.

Three loaders (``weights: {loader: ...}`` of a task, :class:`~minsearch.tasks.weights_config.
WeightsConfig`):

- ``state_dict``: a file as users save one — ``torch.save(model.state_dict(), "m.pt")``
  (``.pt``/``.pth``/``.bin``, read with ``torch.load(weights_only=True)``; a checkpoint dict
  holding ``state_dict``, ``model_state_dict`` or ``model`` is unwrapped, and a ``module.``
  (DataParallel) or ``_orig_mod.`` (torch.compile) prefix on every key is removed) or
  ``safetensors.torch.save_file(model.state_dict(), "m.safetensors")``. Keys and shapes must
  match the model exactly: a mismatch is one :class:`UserError` listing the first few missing,
  unexpected and mis-shaped entries and the spec that was built;
- ``timm``: ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))``
  on a local ``file``, or on the file of an ``hf_hub_id`` found in the local Hugging Face cache
  (looked up here, so timm never reaches for the network): timm's own loader, which adapts
  ``in_chans`` and drops a classifier of another ``num_classes``; what it loads non-strictly
  is then checked like a state dict, the adapted stem and classifier aside;
- ``hf``: the weights an ``hf:`` spec's folder (``save_pretrained``) or cache entry holds.

Nothing is ever downloaded. :func:`weights_identity` names the weights' content for the
parent cache key: a changed file is never served from the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minsearch.errors import UserError, one_line
from minsearch.models import build_model, parse_model_spec

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # checkpoint dicts users save
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile
SHOWN = 3  # entries listed per kind of mismatch
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's weights in a hub repo


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"{what} {str(path)!r} {state}; point `weights` at a file saved with "
                        f"torch.save(model.state_dict(), ...) or safetensors.")


def read_state_dict(file: str | Path) -> dict[str, torch.Tensor]:
    """The state dict a ``.safetensors`` or torch file holds (see the module docstring)."""
    path = Path(file).expanduser()
    _check_file(path, "Weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _strip_prefix(load_file(str(path)))
        except (SafetensorError, OSError) as err:
            raise UserError(f"Weights file {str(path)!r} is not a safetensors file "
                            f"({one_line(err)}); save it with safetensors.torch.save_file("
                            f"model.state_dict(), ...).") from None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refusals, zip errors, EOF: torch's many ways to say no
        raise UserError(f"Weights file {str(path)!r} cannot be read as a torch state dict "
                        f"({one_line(err)[:200]}); save the weights, not the module: "
                        f"torch.save(model.state_dict(), ...).") from None
    return _strip_prefix(_unwrap(blob, path))


def _unwrap(blob: Any, path: Path) -> dict[str, torch.Tensor]:
    """A state dict, or the one a checkpoint dict holds under a :data:`WRAPPER_KEYS` key."""
    if isinstance(blob, dict) and not _is_state_dict(blob):
        for key in WRAPPER_KEYS:
            if _is_state_dict(blob.get(key)):
                return blob[key]
    if not _is_state_dict(blob):
        keys = list(blob)[:6] if isinstance(blob, dict) else []
        holds = f"a dict with keys {keys}" if keys else type(blob).__name__
        raise UserError(f"Weights file {str(path)!r} holds {holds}, not a state dict (names "
                        f"to tensors), nor a checkpoint with one under "
                        f"{', '.join(WRAPPER_KEYS)}; save model.state_dict().")
    return blob


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def mismatches(model: nn.Module, state: dict[str, torch.Tensor],
               adapted: tuple[str, ...] = ()) -> list[str]:
    """What keeps ``state`` from loading into ``model`` strictly: at most :data:`SHOWN`
    missing, unexpected and mis-shaped entries each (with counts), or [] when it fits. Keys
    under an ``adapted`` module prefix may be missing or shaped otherwise (timm's loader
    replaces a classifier and adapts the stem)."""
    own = model.state_dict()
    free = tuple(f"{prefix}." for prefix in adapted)
    missing = [k for k in own if k not in state and not k.startswith(free)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
              for k, v in own.items()
              if k in state and state[k].shape != v.shape and not k.startswith(free)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("shape mismatch", shapes)):
        if items:
            more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:SHOWN])}{more}")
    return parts


def load_state(model: nn.Module, state: dict[str, torch.Tensor], spec: str,
               source: str) -> nn.Module:
    """Load ``state`` into ``model`` (built from ``spec``) strictly, or raise one line that
    lists what does not fit (see :func:`mismatches`)."""
    problems = mismatches(model, state)
    if problems:
        raise UserError(f"Weights {source} do not fit the model built from {spec!r}: "
                        f"{'; '.join(problems)}. Build the model the weights were saved from "
                        f"(its spec arguments: num_classes, in_chans, depth, widths...).")
    model.load_state_dict(state)
    return model


def build_with_weights(spec: str, *, loader: str, file: str | None = None,
                       hf_hub_id: str | None = None) -> nn.Module:
    """The model ``spec`` names, holding the user's weights (see the module docstring)."""
    if loader == "timm":
        return _timm_pretrained(spec, file, hf_hub_id)
    if loader == "hf":
        return _hf_pretrained(spec)
    assert file is not None, "state_dict weights name a file (WeightsConfig checks it)"
    state = read_state_dict(file)
    return load_state(build_model(spec), state, spec, repr(file))


def cached_hub_file(hf_hub_id: str) -> str:
    """The weights file of ``hf_hub_id`` in the local Hugging Face cache (``HF_HUB_CACHE``
    or the library's default), as timm names them; never a download."""
    from huggingface_hub import try_to_load_from_cache

    cache = os.environ.get("HF_HUB_CACHE")  # read now: the library read it at its import
    for name in HUB_FILES:
        path = try_to_load_from_cache(hf_hub_id, name, cache_dir=cache)
        if isinstance(path, str):
            return path
    raise UserError(f"{hf_hub_id!r} has no {' or '.join(HUB_FILES)} in the local Hugging Face "
                    f"cache ({cache or 'the default cache'}); minsearch never downloads: fetch "
                    f"it where there is a network (huggingface-cli download {hf_hub_id}) or set "
                    f"`weights: {{file: ...}}`.")


def _timm_pretrained(spec: str, file: str | None, hf_hub_id: str | None) -> nn.Module:
    import timm

    parsed = parse_model_spec(spec)
    build_model(parsed, device="meta")  # a wrong name or argument: our one-line errors
    if file is None:
        file = cached_hub_file(str(hf_hub_id))
    _check_file(Path(file).expanduser(), "timm weights file")
    file = str(Path(file).expanduser())
    overlay = {"file": file, "hf_hub_id": None, "url": None}  # the file, never the network
    kwargs = {k: v for k, v in parsed.kwargs.items() if k != "pretrained"}
    try:
        model = timm.create_model(parsed.name, pretrained=True, pretrained_cfg_overlay=overlay,
                                  **kwargs)
    except RuntimeError as err:  # strict load_state_dict: missing / unexpected / size
        raise UserError(f"timm could not load {file!r} into the model built from {spec!r}: "
                        f"{_torch_mismatch(str(err))}. Build the model the weights were saved "
                        f"from.") from None
    except Exception as err:  # not a checkpoint timm can read
        raise UserError(f"timm could not read {file!r} for {spec!r}: "
                        f"{one_line(err)[:240]}.") from None
    # timm loads a checkpoint for another head or stem non-strictly: check the rest here
    cfg = model.pretrained_cfg
    adapted = tuple(name for key in ("classifier", "first_conv") for name in (
        [cfg.get(key)] if isinstance(cfg.get(key), str) else cfg.get(key) or []))
    problems = mismatches(model, read_state_dict(file), adapted)
    if problems:
        raise UserError(f"timm could not load {file!r} into the model built from {spec!r}: "
                        f"{'; '.join(problems)}. Build the model the weights were saved from.")
    return model


def _torch_mismatch(message: str) -> str:
    """torch's multi-line ``load_state_dict`` error as one line, the first few keys each."""
    parts = []
    for line in message.splitlines()[1:]:
        line = line.strip()
        label, _, rest = line.partition(":")
        keys = re.findall(r'"([^"]+)"', rest)
        if keys:
            more = f", and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            parts.append(f"{label.strip()}: {', '.join(keys[:SHOWN])}{more}")
        elif line.startswith("size mismatch") and len(parts) < 2 * SHOWN:
            parts.append(line.removesuffix("."))
    return "; ".join(parts) or " ".join(message.split())[:300]


def _hf_pretrained(spec: str) -> nn.Module:
    from minsearch.models.hf import resolve_config

    parsed = parse_model_spec(spec)
    _, weights = resolve_config(parsed.name, {k: v for k, v in parsed.kwargs.items()
                                              if k not in ("auto", "attn_implementation")})
    if weights is None:
        raise UserError(f"{spec!r} holds no weights (a model type builds random ones); for "
                        f"`weights: {{loader: hf}}` name a folder saved with save_pretrained() "
                        f"or a model in the local Hugging Face cache.")
    return build_model(parsed)


def weights_identity(loader: str, file: str | None, hf_hub_id: str | None,
                     spec: str) -> str:
    """What the weights' content is known by: the file's SHA-256 (an ``hf_hub_id``'s cached
    file too), or for an ``hf:`` spec's weights the name with the size and modification time
    of every file of its folder (a cache entry: the name alone)."""
    if file is None and hf_hub_id is not None:
        file = cached_hub_file(hf_hub_id)
    if file is not None:
        path = Path(file).expanduser()
        _check_file(path, "Weights file")
        with path.open("rb") as handle:
            return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    name = hf_hub_id or parse_model_spec(spec).name
    folder = Path(name).expanduser()
    files = sorted(folder.rglob("*")) if folder.is_dir() else []
    stamp = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
             for p in files if p.is_file()]
    return f"{loader}:{name}:{stamp}"
