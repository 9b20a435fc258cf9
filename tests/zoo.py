"""Tiny topologies that every part of surgery is tested on (also usable as model specs, e.g.
``tests.zoo:gpt``). Each states in ``EXPECTED`` the residual sites it must have."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.text.gpt import GPT, Block  # noqa: F401 - the nanoGPT topology of the zoo


class ResidualMLP(nn.Module):
    """Residual adds in the root's own forward, in a loop: ``h = h + layer(h)``."""

    def __init__(self, n_in: int = 8, width: int = 16, depth: int = 3, n_out: int = 4):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
            for _ in range(depth))
        self.out = nn.Linear(width, n_out)

    def forward(self, x):
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(h)
        return self.out(h)


class ConvBNBlock(nn.Module):
    """A ResNet basic block with a projection shortcut (1x1 conv + BN, stride 2)."""

    def __init__(self, c_in: int = 3, c_out: int = 8, n_out: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False),
                                      nn.BatchNorm2d(c_out))
        self.head = nn.Linear(c_out, n_out)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + self.shortcut(x))
        return self.head(out.mean((2, 3)))


class FunctionalNorm(nn.Module):
    """Norm and activation as functional calls on the module's own parameters."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = width
        self.ln_weight = nn.Parameter(torch.ones(width))
        self.ln_bias = nn.Parameter(torch.zeros(width))
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        h = F.layer_norm(x, (self.width,), self.ln_weight, self.ln_bias)
        h = F.gelu(self.fc1(h))
        return x + self.fc2(h)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class NotResiduals(nn.Module):
    """Adds that are not skip connections, around exactly one real residual:
    a position embedding, RoPE, a relative-position attention bias, a mask input,
    a multi-branch sum and ``x + const``."""

    def __init__(self, tokens: int = 6, width: int = 8):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.bias_table = nn.Parameter(torch.zeros(2 * tokens - 1))
        idx = torch.arange(tokens)
        self.register_buffer("rel_index", (idx[:, None] - idx[None, :]) + tokens - 1)
        angles = torch.arange(tokens)[:, None] * torch.ones(width) / 10
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())
        self.head_a = nn.Linear(width, 3)
        self.head_b = nn.Linear(width, 3)

    def forward(self, x, mask):
        x = x + self.pos_embed  # position embedding
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q * self.cos + rotate_half(q) * self.sin  # RoPE
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores + self.bias_table[self.rel_index]  # attention bias
        scores = scores + mask  # mask input
        x = x + self.proj(scores.softmax(-1) @ v)  # the one residual
        y = self.head_a(x) + self.head_b(x)  # multi-branch sum
        return y + 1.0  # x + const


class DataDependent(nn.Module):
    """Data-dependent control flow: cannot be traced."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)
        self.act = nn.ReLU()

    def forward(self, x):
        if x.sum() > 0:
            x = x + self.fc(self.norm(x))
        return self.act(x)


class HasUntraceablePart(nn.Module):
    """A traceable residual model with one untraceable submodule: that class becomes a leaf."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.inner = DataDependent(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        x = self.inner(x)
        return x + self.fc(x)


def residual_mlp(**kw) -> nn.Module:
    return ResidualMLP(**kw)


def gpt(**kw) -> nn.Module:
    return GPT(**kw)


def conv_bn(**kw) -> nn.Module:
    return ConvBNBlock(**kw)


# name -> (factory, example input, residual site names, shortcut kinds)
def flow_zoo_model() -> nn.Module:
    """A 4-dim flow whose three steps hold an affine coupling, an additive one and a
    residual block (ActNorm and an invertible linear mixing in each)."""
    from minsearch.flows.zoo import mlp_flow

    flow = mlp_flow(dims=4, steps=3, hidden=8, transform=["affine", "additive", "residual-sn"])
    with torch.no_grad():  # couplings start as the identity (zero last layer): perturb them
        for module in flow.modules():
            if isinstance(module, nn.Linear) and not module.weight.any():
                module.weight.normal_(0.0, 0.1)
    return flow


ZOO = {
    "residual_mlp": (ResidualMLP, lambda: torch.randn(4, 8),
                     ["residual_0", "residual_1", "residual_2"], ["identity"] * 3),
    "gpt": (GPT, lambda: torch.randint(0, 32, (2, 16)),
            ["h.0.residual_0", "h.0.residual_1", "h.1.residual_0", "h.1.residual_1"],
            ["identity"] * 4),
    "conv_bn": (ConvBNBlock, lambda: torch.randn(2, 3, 8, 8), ["residual_0"], ["projection"]),
    # 16 input channels: wide enough for the int8 conv option (catalog/precision.py)
    "wide_conv_bn": (lambda: ConvBNBlock(c_in=16, c_out=16), lambda: torch.randn(2, 16, 8, 8),
                     ["residual_0"], ["projection"]),
    # 1024 input features: a whole tinygemm tile, where the int4 option is offered
    "wide_linear": (lambda: nn.Sequential(nn.Linear(1024, 16), nn.ReLU(), nn.Linear(16, 4)),
                    lambda: torch.randn(4, 1024), [], []),
    "functional_norm": (FunctionalNorm, lambda: torch.randn(4, 16), ["residual_0"],
                        ["identity"]),
    "untraceable_part": (HasUntraceablePart, lambda: torch.randn(4, 8), ["residual_0"],
                         ["identity"]),
    # a flow with every flow site kind; its layers are atoms for graph rewrites: no residuals
    "flow": (lambda: flow_zoo_model(), lambda: torch.randn(4, 4), [], []),
}
