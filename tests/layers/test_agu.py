"""The adaptive gating unit: exact identity at init, every variant in both layouts, and the fused
Triton kernels against a float64 torch reference, run under ``TRITON_INTERPRET=1`` in a child
process (the interpreter must be chosen before the kernel module is imported, and the pytest
process must not be switched to it for everyone else)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm.layers
import torch
from torch import nn

from minsearch.layers.agu import GATE_MODES, GateAdd, GateSquash
from minsearch.layers.norm_info import NormAct, channel_view

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = {"tokens": ((2, 5, 8), -1), "maps": ((2, 8, 3, 4), 1)}


class PreNormBlock(nn.Module):
    """``x + f(norm(x))`` with a two-layer branch, on tokens (B, N, C) or maps (N, C, H, W)."""

    def __init__(self, channels: int, channel_dim: int):
        super().__init__()
        self.channel_dim = channel_dim
        if channel_dim == -1:
            self.norm = nn.LayerNorm(channels)
            self.f = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                   nn.Linear(2 * channels, channels))
        else:
            self.norm = timm.layers.LayerNorm2d(channels)
            self.f = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU(),
                                   nn.Conv2d(2 * channels, channels, 1))
        self.add = None

    def to_agu(self, mode: str, init: float) -> PreNormBlock:
        channels = self.norm.weight.numel()
        self.norm = GateSquash.from_module(self.norm)
        self.add = GateAdd(mode, channels, self.channel_dim, init=init)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.f(self.norm(x))
        return x + h if self.add is None else self.add(x, h)


def _randomize(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() == 0 else 0.0))


# ---- the torch (CPU) path ------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", GATE_MODES)
def test_gate_at_zero_is_exact_identity(mode, layout):
    shape, cd = LAYOUTS[layout]
    x, h = torch.randn(shape), torch.randn(shape) * 1e6
    assert torch.equal(GateAdd(mode, shape[cd], cd, init=0.0)(x, h), x)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", GATE_MODES)
def test_gate_at_one_is_exact_plain_add(mode, layout):
    shape, cd = LAYOUTS[layout]
    x, h = torch.randn(shape), torch.randn(shape)
    assert torch.equal(GateAdd(mode, shape[cd], cd, init=1.0)(x, h), x + h)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_gate_starts_as_channel_gate_then_depends_on_input(layout):
    shape, cd = LAYOUTS[layout]
    x, h = torch.randn(shape), torch.randn(shape)
    gate, channel = GateAdd("input", shape[cd], cd, 0.3), GateAdd("channel", shape[cd], cd, 0.3)
    assert torch.equal(gate(x, h), channel(x, h))  # v = 0: factor 1 + tanh(0) = 1
    with torch.no_grad():
        gate.v.normal_()
    factor = gate.row_gate(x)
    assert factor.shape == x.movedim(cd, -1).shape[:-1]
    assert factor.min() > 0 and factor.max() < 2 and factor.std() > 0
    expected = x + channel_view(gate.g, x, cd) * factor.unsqueeze(cd) * h
    torch.testing.assert_close(gate(x, h), expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", GATE_MODES)
def test_unit_at_zero_is_identity_and_only_the_gate_learns_first(mode, layout):
    shape, cd = LAYOUTS[layout]
    block = PreNormBlock(shape[cd], cd)
    _randomize(block)
    block.to_agu(mode, init=0.0)
    x = torch.randn(shape) * 3
    y = block(x)
    assert torch.equal(y, x)
    (y * torch.randn(shape)).sum().backward()
    assert block.add.g.grad.abs().sum() > 0  # the gate opens at the first step (ReZero)
    for name, p in block.named_parameters():
        if name != "add.g":  # the branch, the squash and v see g = 0: no gradient yet
            assert torch.count_nonzero(p.grad) == 0, name


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", GATE_MODES)
def test_unit_forward_backward_every_parameter_learns(mode, layout):
    shape, cd = LAYOUTS[layout]
    block = PreNormBlock(shape[cd], cd).to_agu(mode, init=1.0)
    _randomize(block, seed=1)
    x = (torch.randn(shape) * 3).requires_grad_()
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    (y * torch.randn(shape)).sum().backward()
    for name, t in [("x", x), *block.named_parameters()]:
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


def test_from_module_copies_the_affine_and_the_axis():
    ln = nn.LayerNorm(6)
    _randomize(ln)
    squash = GateSquash.from_module(ln, alpha_init=0.25)
    assert squash.channel_dim == -1 and squash.alpha.item() == 0.25
    assert torch.equal(squash.weight, ln.weight) and torch.equal(squash.bias, ln.bias)
    bare = GateSquash.from_module(nn.LayerNorm(6, elementwise_affine=False))
    assert torch.equal(bare.weight, torch.ones(6)) and torch.equal(bare.bias, torch.zeros(6))
    assert GateSquash.from_module(timm.layers.LayerNorm2d(6)).channel_dim == 1
    ln64 = nn.LayerNorm(6, dtype=torch.float64, device="meta")
    squash64 = GateSquash.from_module(ln64)
    assert squash64.weight.dtype == torch.float64 and squash64.weight.device.type == "meta"


def test_from_module_keeps_a_fused_activation():
    bn_act = timm.layers.BatchNormAct2d(6, act_layer=nn.ReLU)
    new = GateSquash.from_module(bn_act)
    assert isinstance(new, NormAct) and any(isinstance(m, nn.ReLU) for m in new.act.modules())
    assert isinstance(new.norm, GateSquash) and new.norm.channel_dim == 1
    assert (new(torch.randn(2, 6, 3, 3) * 100) >= 0).all()


def test_squash_is_bounded_like_a_norm():
    squash = GateSquash(8)
    _randomize(squash)
    x = torch.randn(4, 8) * torch.logspace(-3, 6, 8)
    u = squash(x)
    slack = 1e-6 * (1 + squash.bias.abs())  # rounding of the bias add
    assert ((u - squash.bias).abs() <= squash.weight.abs() + slack).all()


def test_fx_trace_takes_the_torch_path():
    block = PreNormBlock(8, -1).to_agu("input", init=1.0)
    _randomize(block)
    traced = torch.fx.symbolic_trace(block)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(traced(x), block(x))


def test_user_errors_state_the_rule():
    with pytest.raises(ValueError, match="Unknown gate mode 'chanel'; known: scalar"):
        GateAdd("chanel", 8)
    with pytest.raises(ValueError, match="needs `channels`.*channels=None"):
        GateAdd("channel")
    with pytest.raises(ValueError, match="Unknown kernel 'cuda'; known: auto, torch, triton"):
        GateSquash(8, kernel="cuda")
    assert GateAdd("scalar", 8).g.shape == ()


def test_cpu_path_does_not_import_triton_and_forcing_it_explains():
    code = (
        "import sys, torch\n"
        "from minsearch.layers.agu import GateAdd, GateSquash\n"
        "x = torch.randn(2, 3, 8)\n"
        "GateAdd('input', 8, init=1.0)(x, GateSquash(8)(x)).sum().backward()\n"
        "print('triton' in sys.modules)\n"
        "try:\n"
        "    GateSquash(8, kernel='triton')(x)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    first, message = out.stdout.split("\n", 1)
    assert first == "False"
    assert "run on CUDA tensors, or on CPU when TRITON_INTERPRET=1" in message


# ---- the fused kernels, under the Triton interpreter ---------------------------------------

# (shape, channel_dim, tiling overrides): default tiles, then small tiles that give several
# channel blocks, ragged edges and several row programs each looping over several tiles.
GEOMETRIES = {
    "tokens": ((2, 5, 12), -1, {}),
    "tokens-tiled": ((3, 37, 40), -1, dict(block_m=8, block_c=16, programs=2)),
    "maps": ((2, 6, 3, 5), 1, {}),
    "maps-tiled": ((2, 20, 3, 5), 1, dict(block_m=8, block_c=8, programs=3)),
    "maps-channels-last": ((2, 6, 3, 5), 1, {}),  # stored (N, H, W, C): run as tokens
}
KERNEL_CASES = [
    *(f"squash/{geo}" for geo in GEOMETRIES),
    *(f"gated_add-{mode}/{geo}" for mode in GATE_MODES for geo in GEOMETRIES),
    "squash/fp16-activations", "gated_add-channel/fp16-activations",
    *(f"module-{mode}/{layout}" for mode in ("squash", *GATE_MODES) for layout in LAYOUTS),
]


def _reference(op: str, inputs: list[torch.Tensor], cd: int) -> torch.Tensor:
    if op == "squash":
        x, a, w, b = inputs
        return channel_view(w, x, cd) * torch.tanh(a * x) + channel_view(b, x, cd)
    x, h, g, *g_row = inputs
    g = g if g.dim() == 0 else channel_view(g, h, cd)
    if g_row:
        g = g * g_row[0].unsqueeze(cd)
    return x + g * h


def _inputs(op: str, mode: str, shape: tuple, cd: int, dtype: torch.dtype,
            channels_last: bool = False) -> list:
    g = torch.Generator().manual_seed(0)
    c = shape[cd]
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=layout)
    if op == "squash":
        return [x, torch.tensor(0.7), torch.randn(c, generator=g), torch.randn(c, generator=g)]
    h = torch.randn(shape, generator=g).to(dtype).contiguous(memory_format=layout)
    gate = torch.tensor(0.6) if mode == "scalar" else torch.randn(c, generator=g)
    if mode != "input":
        return [x, h, gate]
    positions = x.movedim(cd, -1).shape[:-1]
    return [x, h, gate, 1 + torch.rand(positions, generator=g)]


def _check_kernel_case(case: str) -> None:
    """One case: the fused op's output and every gradient against the torch reference in
    float64 (elementwise results to fp32 precision; reductions to 1e-4, sums of ~10^3 terms)."""
    from minsearch.kernels import gate_triton

    what, geo = case.split("/")
    if what.startswith("module"):
        return _check_module_case(what.split("-")[1], geo)
    op, _, mode = what.partition("-")
    half = geo == "fp16-activations"
    shape, cd, tiling = GEOMETRIES["tokens" if half else geo]
    dtype = torch.float16 if half else torch.float32
    cl = geo == "maps-channels-last"
    inputs = [t.requires_grad_() for t in _inputs(op, mode, shape, cd, dtype, channels_last=cl)]
    fused = gate_triton.squash if op == "squash" else gate_triton.gated_add
    out = fused(*inputs, channel_dim=cd, **tiling)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, inputs, dout.to(out.dtype))
    ref_in = [t.detach().double().requires_grad_() for t in inputs]
    ref = _reference(op, ref_in, cd)
    ref_grads = torch.autograd.grad(ref, ref_in, dout.double())
    like = _reference(op, inputs, cd)  # torch's own fp32/fp16 result: the dtypes to match
    like_grads = torch.autograd.grad(like, inputs, dout.to(like.dtype))
    assert out.dtype == like.dtype, (out.dtype, like.dtype)
    assert out.stride() == like.stride(), (out.stride(), like.stride())  # memory format kept
    tol = dict(rtol=2e-3, atol=2e-3) if half else {}
    torch.testing.assert_close(out, ref.to(out.dtype), **tol)
    for i, (got, want, dtype) in enumerate(zip(grads, ref_grads, like_grads, strict=True)):
        assert got.dtype == dtype.dtype and got.shape == want.shape, (i, got.dtype, got.shape)
        reduced = inputs[i].numel() < inputs[0].numel()
        torch.testing.assert_close(got, want.to(got.dtype), msg=lambda m, i=i: f"grad {i}: {m}",
                                   **(dict(rtol=1e-4, atol=1e-4) if reduced else tol))


def _check_module_case(mode: str, layout: str) -> None:
    """The modules' Triton path (kernel='triton') against their torch path, same parameters."""
    shape, cd = LAYOUTS[layout]
    pair = [GateSquash(shape[cd], cd, kernel=k) if mode == "squash" else
            GateAdd(mode, shape[cd], cd, init=0.5, kernel=k) for k in ("triton", "torch")]
    _randomize(pair[0], seed=2)
    pair[1].load_state_dict(pair[0].state_dict())
    x, h = torch.randn(shape) * 3, torch.randn(shape)
    results = []
    for module in pair:
        inputs = [x.clone().requires_grad_(), h.clone().requires_grad_()]
        inputs = inputs[:1] if mode == "squash" else inputs
        out = module(*inputs)
        leaves = [*inputs, *module.parameters()]
        results.append([out, *torch.autograd.grad(out, leaves, torch.ones_like(out) * 0.5)])
    for i, (got, want) in enumerate(zip(*results, strict=True)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=lambda m, i=i: f"{i}: {m}")


def _run_kernel_cases() -> dict[str, str | None]:
    """Child-process entry: every case, each reported as None or its failure message."""
    assert os.environ.get("TRITON_INTERPRET") == "1"
    results = {}
    for case in KERNEL_CASES:
        try:
            _check_kernel_case(case)
            results[case] = None
        except Exception as e:  # reported per case by the parent's parametrized test
            results[case] = f"{type(e).__name__}: {e}"
    return results


@pytest.fixture(scope="module")
def kernel_results() -> dict[str, str | None]:
    code = (f"import json, runpy\nns = runpy.run_path({str(Path(__file__))!r})\n"
            f"print(json.dumps(ns['_run_kernel_cases']()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_fused_kernel_matches_reference(kernel_results, case):
    assert kernel_results[case] is None, kernel_results[case]
