"""A character-level GPT in one readable file (after nanoGPT).

``x = x + self.attn(self.ln_1(x))`` is the canonical pre-norm residual the surgery engine is
tested on; :func:`char_gpt` is the factory a task names (``minsearch.text.gpt:char_gpt``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.errors import UserError


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """nanoGPT's block: the canonical pre-norm residual."""

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab: int = 32, block_size: int = 16, n_embd: int = 16,
                 n_head: int = 2, n_layer: int = 2):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # token + position embedding: not a residual
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def char_gpt(vocab_size: int = 128, block_size: int = 64, n_embd: int = 64, n_head: int = 4,
             n_layer: int = 2) -> GPT:
    """A small character-level GPT: ``vocab_size`` covers ASCII (see minsearch.text.corpus)."""
    if n_embd % n_head:
        raise UserError(f"`n_embd % n_head == 0` must hold, but got {n_embd=} and {n_head=}.")
    return GPT(vocab_size, block_size, n_embd, n_head, n_layer)
