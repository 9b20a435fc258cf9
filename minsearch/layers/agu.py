"""Adaptive gating unit (AGU): one pre-norm + residual pair ``y = x + f(norm(x))`` becomes

    u = weight ⊙ tanh(alpha · x) + bias      # GateSquash, where the norm was
    y = x + g ⊙ f(u)                          # GateAdd, where the add was

and the branch ``f`` is untouched. The two jobs a norm does in a residual block are split
between the two modules, each taken from work that showed it alone is enough:

- bounding what enters the branch: DyT (Zhu et al., CVPR 2025) matched LayerNorm on ViT,
  ConvNeXt and LLaMA with ``tanh(alpha·x)`` and the norm's affine — no statistics, so no
  reduction over channels and nothing that differs between training and inference;
- keeping the residual stream well-conditioned with depth: ReZero, SkipInit and LayerScale
  trained deep networks without norms by scaling the branch with a learned gate that starts
  at or near 0, so that each block starts close to the identity.

Initialisation is explicit. ``GateAdd(init=0.0)`` makes the block the exact identity at step 0
(ReZero: the choice for training from scratch); ``init=1.0`` leaves the branch at full
strength — ``y = x + f(u)`` exactly — the choice for fine-tuning a trained parent, where the
squash then only has to learn to stand in for the norm. ``alpha_init`` is DyT's 0.5; the
squash's weight and bias are copied from the replaced norm's affine (1 and 0 when it has none).

Kernels: on CUDA, with triton importable, both modules call the fused kernels of
:mod:`minsearch.kernels.gate_triton` (imported only then); elsewhere — CPU, FX tracing,
torch.compile — they run the same math as plain torch ops. ``kernel="torch"`` or ``"triton"``
forces one path.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import nn

from minsearch.layers.norm_info import build_like, channel_view, norm_info, with_tail

GATE_MODES = ("scalar", "channel", "input")
KERNELS = ("auto", "torch", "triton")
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; known: {', '.join(KERNELS)}.")


def _fused(kernel: str, *tensors: torch.Tensor) -> bool:
    """Whether a call takes the Triton path: forced, or ``auto`` with every tensor on CUDA,
    non-empty, in a dtype the kernels store (they compute in fp32), and no tracer or compiler
    watching (inductor fuses the torch ops itself)."""
    if kernel != "auto":
        return kernel == "triton"
    if torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.compiler.is_compiling():
        return False
    if torch.jit.is_tracing() or not _triton_importable():
        return False
    return all(t.is_cuda and t.dtype in _FUSED_DTYPES and t.numel() > 0 for t in tensors)


class GateSquash(nn.Module):
    """``weight ⊙ tanh(alpha·x) + bias`` in a norm's place: bounded by ``|weight|`` around
    ``bias`` whatever ``x`` is, as a norm's output is, with no per-token statistics.

    ``alpha``: one learned scalar; ``weight``, ``bias``: (channels,) on ``channel_dim``
    (-1 for tokens (B, N, C), 1 for feature maps (N, C, H, W)). ``kernel``: ``auto``,
    ``torch`` or ``triton`` (see the module docstring)."""

    def __init__(self, channels: int, channel_dim: int = -1, alpha_init: float = 0.5,
                 kernel: str = "auto"):
        super().__init__()
        _check_kernel(kernel)
        self.channel_dim, self.kernel = channel_dim, kernel
        self.alpha = nn.Parameter(torch.full((), float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_module(cls, norm: nn.Module, alpha_init: float = 0.5) -> nn.Module:
        """The squash for ``norm``: its channels, axis, device, dtype and affine; a timm norm's
        fused activation (``*Act`` norms) follows it as before."""
        info = norm_info(norm)
        return with_tail(build_like(cls, info, info.channels, info.channel_dim, alpha_init), info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fused(self.kernel, x, self.weight):
            from minsearch.kernels.gate_triton import squash

            return squash(x, self.alpha, self.weight, self.bias, self.channel_dim)
        w = channel_view(self.weight, x, self.channel_dim)
        b = channel_view(self.bias, x, self.channel_dim)
        return w * torch.tanh(self.alpha * x) + b

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}, kernel={self.kernel}"


class GateAdd(nn.Module):
    """A gated residual add, ``forward(shortcut, branch) = shortcut + g ⊙ branch``.

    Modes (what ``g`` is):

    - ``scalar``: one learned value ``g`` (ReZero/SkipInit);
    - ``channel``: a learned ``g`` of shape (channels,) (LayerScale);
    - ``input``: ``g = g0 ⊙ (1 + tanh(shortcut · v))`` — ``g0`` (channels,) as in ``channel``,
      rescaled at each position by a factor in (0, 2) read from that position's input; ``v``
      (channels,) starts at 0, so the factor starts at 1 and the gate equals ``g0``. While
      ``g0`` is 0 no gradient reaches ``v``: the input dependence is learned once the gate
      opens.

    Every mode starts at ``g = init`` everywhere: ``init=0`` is the exact identity
    ``shortcut``, ``init=1`` the plain add ``shortcut + branch``, bit for bit. ``channels`` is
    needed by ``channel`` and ``input`` (ignored by ``scalar``); ``kernel`` as in GateSquash."""

    def __init__(self, mode: str, channels: int | None = None, channel_dim: int = -1,
                 init: float = 0.0, kernel: str = "auto"):
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"Unknown gate mode {mode!r}; known: {', '.join(GATE_MODES)}.")
        if mode != "scalar" and not (isinstance(channels, int) and channels > 0):
            raise ValueError(f"GateAdd(mode={mode!r}) needs `channels`, the size of the channel "
                             f"axis (a positive int), but got channels={channels!r}.")
        _check_kernel(kernel)
        self.mode, self.channel_dim, self.kernel = mode, channel_dim, kernel
        self.g = nn.Parameter(torch.full(() if mode == "scalar" else (channels,), float(init)))
        if mode == "input":
            self.v = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("v", None)

    def row_gate(self, shortcut: torch.Tensor) -> torch.Tensor | None:
        """``1 + tanh(shortcut · v)``: one factor per position, shaped like ``shortcut`` without
        its channel axis ((B, N) or (N, H, W)); None unless the mode is ``input``."""
        if self.v is None:
            return None
        return 1 + torch.tanh(shortcut.movedim(self.channel_dim, -1) @ self.v.to(shortcut.dtype))

    def forward(self, shortcut: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        g_row = self.row_gate(shortcut)
        if _fused(self.kernel, shortcut, branch, self.g) and (
            self.kernel == "triton" or shortcut.shape == branch.shape  # no broadcasting there
        ):
            from minsearch.kernels.gate_triton import gated_add

            return gated_add(shortcut, branch, self.g, g_row, self.channel_dim)
        g = self.g if self.mode == "scalar" else channel_view(self.g, branch, self.channel_dim)
        if g_row is not None:
            g = g * g_row.unsqueeze(self.channel_dim)  # (..., C) or (N, C, H, W)
        return shortcut + g * branch

    def extra_repr(self) -> str:
        channels = "" if self.g.dim() == 0 else f", {self.g.numel()}"
        return f"{self.mode}{channels}, channel_dim={self.channel_dim}, kernel={self.kernel}"
