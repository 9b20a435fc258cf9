"""Low-precision attention in transformers models, the way transformers expects it.

transformers' attention modules compute Q, K and V (RoPE, KV cache update, GQA heads
included), then call the function that ``ALL_ATTENTION_FUNCTIONS`` registers under
``config._attn_implementation``. minsearch registers one such function,
:data:`IMPLEMENTATION` (``"minsearch_lowp"``), through transformers' ``AttentionInterface``,
and an attention site is switched *per layer*:

- the module at the site is replaced by a shallow copy of itself (same class, same parameter
  tensors, same state_dict keys) whose ``config`` is a copy with ``_attn_implementation =
  "minsearch_lowp"``, and which holds a :class:`~minsearch.attention.sdpa.LowpSDPA` child
  (``lowp_sdpa``; its learned P scale adds ``lowp_sdpa.p_scale`` for binary/ternary P);
- the registered function follows transformers' own ``sdpa_attention_forward`` (causal flag,
  GQA, T5's position bias, dropout, scaling) and calls that child instead of
  ``F.scaled_dot_product_attention``.

The model's config keeps its implementation, so the masks the model builds (bool for sdpa,
additive for eager; sliding windows included) are the ones the function receives, and every
other layer runs as before. The KV cache is updated by the module before the call: generation
works unchanged. ``softcap`` (Gemma 2's eager attention) has no SDPA form and is refused.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from minsearch.attention.sdpa import LowpSDPA
from minsearch.attention.spec import AttnSpec
from minsearch.errors import UserError

IMPLEMENTATION = "minsearch_lowp"
CHILD = "lowp_sdpa"


def lowp_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                           value: torch.Tensor, attention_mask: torch.Tensor | None,
                           dropout: float = 0.0, scaling: float | None = None,
                           is_causal: bool | None = None,
                           position_bias: torch.Tensor | None = None,
                           **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; q: (B, nh, Tq, hs), k/v: (B, nkv, Tk, hs).
    Returns ((B, Tq, nh, hs), None)."""
    if kwargs.get("softcap") is not None:
        raise UserError(f"{type(module).__name__} soft-caps its attention scores (softcap="
                        f"{kwargs['softcap']}), which low-precision SDPA does not do; keep this "
                        f"attention site.")
    sdpa: LowpSDPA = getattr(module, CHILD)
    groups = getattr(module, "num_key_value_groups", 1)
    q_len = query.shape[2]
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    is_causal = q_len > 1 and attention_mask is None and is_causal
    if is_causal and key.shape[2] > q_len:  # prefill into a longer static cache: as sdpa does
        key, value = key[:, :, :q_len], value[:, :, :q_len]
        if position_bias is not None:
            position_bias = position_bias[..., :q_len]
    if position_bias is not None:  # T5: the bias joins the mask as an additive float mask
        from transformers.integrations.sdpa_attention import create_position_bias_mask

        attention_mask = create_position_bias_mask(position_bias, attention_mask, is_causal,
                                                   query, key)
        is_causal = False
    out = sdpa(query, key, value, attention_mask, dropout, is_causal, scaling,
               enable_gqa=groups > 1)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Register :func:`lowp_attention_forward` with transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, lowp_attention_forward)


def num_heads(module: nn.Module) -> int:
    config = getattr(module, "config", None)
    for owner, attr in ((module, "num_heads"), (config, "num_attention_heads"),
                        (config, "num_heads"), (config, "n_head")):
        value = getattr(owner, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1


def lowp_hf_attention(old: nn.Module, spec: AttnSpec) -> nn.Module:
    """A copy of the transformers attention module ``old`` (sharing its parameters) that runs
    through :func:`lowp_attention_forward` at ``spec``'s precision."""
    register()
    new = copy.copy(old)
    for name, value in vars(old).items():  # own dicts: adding a child must not touch `old`
        if isinstance(value, dict):
            new.__dict__[name] = type(value)(value)
    config = copy.copy(old.config)
    config._attn_implementation_internal = IMPLEMENTATION  # this layer only; see module doc
    new.config = config
    ref = next(iter(old.parameters()), None)
    sdpa = LowpSDPA(spec, num_heads(old))
    if ref is not None:
        sdpa = sdpa.to(ref.device)
    new.add_module(CHILD, sdpa.train(old.training))
    return new
