"""Shared inputs for the attention tests (imported as ``tests.attention.helpers``)."""

from __future__ import annotations

import torch

from minsearch.catalog.registry import get_option, options_for

PRECISION_OPTIONS = [n for n in options_for("attention") if n != "keep"]


def qkv(B: int = 2, H: int = 2, T: int = 64, D: int = 32, seed: int = 0,
        requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian Q, K, V (B, H, T, D); K gets a per-channel offset (what K smoothing removes)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    k = k + 2.0 * torch.randn(1, 1, 1, D, generator=g)
    return tuple(t.requires_grad_(requires_grad) for t in (q, k, v))


def config(name: str, **fields):
    return get_option("attention", name).make_config(**fields)


def close_up_to_rare_flips(out: torch.Tensor, ref: torch.Tensor, fp32: torch.Tensor) -> None:
    """``out`` equals ``ref`` except where a value sits on a rounding boundary of the P format
    (two implementations of the same formula differ in the last bit of S or exp): such flips
    are rare (mean difference <= 1% of the quantization error) and small (each <= the largest
    quantization error)."""
    diff, err = (out - ref).abs(), (ref - fp32).abs()
    assert diff.mean() <= 0.01 * err.mean() + 1e-6, (diff.mean(), err.mean())
    assert diff.max() <= err.max() + 1e-5, (diff.max(), err.max())
