"""The adaptive gating unit's cost beside the norm + add it replaces, forward and backward.

A pre-norm block ``y = x + f(norm(x))`` spends two ops on what the unit replaces: the norm
``u = norm(x)`` and the add ``y = x + h`` (h = f(u), the branch's output). This times exactly
those two ops, side by side, for:

- ``LayerNorm + add`` (tokens) or ``BatchNorm2d + add`` (maps): the unfused torch baseline;
- ``AGU torch <mode>``: GateSquash + GateAdd on their plain-torch path (the CPU path);
- ``AGU fused <mode>``: the same modules on the Triton kernels — CUDA only; elsewhere its row
  shows the bytes model and says why it was not timed.

Forward: inference (``no_grad``, modules in eval mode). Backward: ``autograd.grad`` of (u, y)
into x, h and every parameter, given du and dy, replayed on a retained training-mode graph.
Latency: median of synchronised runs after warm-up. Bytes moved: torch paths are counted
with a dispatch mode — each aten op is one kernel that reads its tensor inputs and writes its
outputs once (views and ``empty`` are free; broadcast dims count once); the fused path uses a
model of its kernels' reads and writes (:func:`fused_bytes`), since Triton launches are not
aten ops. Neither counts cache hits: these are DRAM bytes in the streaming limit.

    python benchmarks/gate.py            # ViT-S tokens (32, 197, 384), maps (32, 64, 56, 56)
    python benchmarks/gate.py --quick    # small shapes, few repeats (a smoke run, ~10 s)
    python benchmarks/gate.py --threads 1 --compile   # + inductor-fused torch paths
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import platform
from collections.abc import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from minsearch.layers.agu import GATE_MODES, GateAdd, GateSquash
from minsearch.objectives.latency import median_ms

_FREE = {"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided"}


def _unique_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel touches for ``t``: broadcast (stride-0) dims count once."""
    n = math.prod(s for s, st in zip(t.shape, t.stride(), strict=True) if st != 0)
    return n * t.element_size()


class ByteCounter(TorchDispatchMode):
    """Sums reads + writes of every aten op run under it (one op = one kernel)."""

    def __init__(self):
        super().__init__()
        self.bytes, self.kernels = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if func.is_view or func.__name__.split(".")[0] in _FREE:
            return out
        storages = {t.untyped_storage().data_ptr() for t in ins}
        if not func._schema.is_mutable and outs and all(
                t.untyped_storage().data_ptr() in storages for t in outs):
            return out  # an alias of an input (``_unsafe_view`` and kin): no data moves
        self.bytes += sum(_unique_bytes(t) for t in ins + outs)
        self.kernels += 1
        return out


class Pair(nn.Module):
    """The two ops under test: ``(norm(x), add(x, h))``."""

    def __init__(self, norm: nn.Module, add: Callable | nn.Module):
        super().__init__()
        self.norm, self.add = norm, add

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.norm(x), self.add(x, h)


def _plain_add(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return x + h


def make_pairs(channels: int, channel_dim: int, device: torch.device, fused: bool,
               compile: bool = False) -> dict[str, nn.Module]:
    """Baseline first, then the AGU per gate mode: torch ops, Triton kernels (``fused``), and
    with ``compile`` each torch path again under ``torch.compile`` (inductor's own fusion)."""
    base = nn.LayerNorm(channels) if channel_dim == -1 else nn.BatchNorm2d(channels)
    pairs = {f"{type(base).__name__} + add": Pair(base, _plain_add)}
    for kernel in ("torch", "triton") if fused else ("torch",):
        for mode in GATE_MODES:
            squash = GateSquash(channels, channel_dim, kernel=kernel)
            gate = GateAdd(mode, channels, channel_dim, init=0.5, kernel=kernel)
            if gate.v is not None:
                nn.init.normal_(gate.v, std=channels ** -0.5)  # a trained, input-dependent gate
            pairs[f"AGU {'fused' if kernel == 'triton' else 'torch'} {mode}"] = Pair(squash, gate)
    pairs = {name: pair.to(device) for name, pair in pairs.items()}
    if compile:
        # every Pair shares one forward code object; each instance x {train, eval} x grad mode
        # is a recompile, past dynamo's default limit of 8 (after which it runs eagerly)
        torch._dynamo.config.recompile_limit = 256
        torch._dynamo.config.accumulated_recompile_limit = 4096
        torch._functorch.config.donated_buffer = False  # the backward is replayed (retain_graph)
        eager = [name for name in pairs if "fused" not in name]
        pairs.update({f"{name} (compiled)": torch.compile(pairs[name]) for name in eager})
    return pairs


def _graph(pair: nn.Module, x: torch.Tensor, h: torch.Tensor) -> Callable[[], object]:
    """A training-mode graph of the pair, and a closure replaying its backward into x, h and
    every parameter (``retain_graph``: each call runs the same backward kernels)."""
    pair.train()
    xg, hg = x.detach().requires_grad_(), h.detach().requires_grad_()
    outs = pair(xg, hg)
    grads_out = [torch.randn_like(o) for o in outs]
    leaves = [xg, hg, *pair.parameters()]
    return lambda: torch.autograd.grad(outs, leaves, grads_out, retain_graph=True)


def timings(pair: nn.Module, x: torch.Tensor, h: torch.Tensor, warmup: int,
            reps: int) -> tuple[float, float]:
    """Median ms of the forward (inference: eval mode, no_grad) and of the backward."""
    backward = _graph(pair, x, h)
    pair.eval()
    with torch.no_grad():
        fwd_ms = median_ms(lambda: pair(x, h), reps, warmup, x.device)
    return fwd_ms, median_ms(backward, reps, warmup, x.device)


def count_bytes(pair: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[int, int]:
    """Bytes moved by the forward (inference) and by the backward, op by op."""
    backward = _graph(pair, x, h)
    pair.eval()
    with torch.no_grad(), ByteCounter() as fwd:
        pair(x, h)
    with ByteCounter() as bwd:
        backward()
    return fwd.bytes, bwd.bytes


def fused_bytes(shape: tuple[int, ...], channel_dim: int, mode: str, elem: int,
                sms: int) -> tuple[int, int]:
    """(forward, backward) DRAM bytes of the fused path, kernel by kernel, on a GPU of ``sms``
    SMs (which sets the backward's partial-sum rows P). Parameters and partials are fp32."""
    from minsearch.kernels.gate_triton import _blocks, _layout, _row_split

    m, c, s = _layout(torch.empty(shape, device="meta"), channel_dim)
    e = m * c
    block_m, block_c = _blocks(m, c, s, None, None)
    p, _ = _row_split(m, block_m, math.ceil(c / block_c), sms)
    g = 1 if mode == "scalar" else c
    row = m if mode == "input" else 0  # g_r: one fp32 value per position
    fwd = (2 * e * elem + (2 * c + 1) * 4  # squash: read x, write u; alpha, w, b
           + 3 * e * elem + (g + row) * 4)  # gated add: read x, h, write y; g_c, g_r
    bwd = (3 * e * elem + (c + 1) * 4 + 3 * p * c * 4  # squash: read x, du, write dx; partials
           + 3 * p * c * 4 + (2 * c + 1) * 4  # sum the partials: read P x C three times
           + 3 * e * elem + (g + row) * 4 + p * c * 4  # gated add: read dy, h, write dh
           + p * c * 4 + g * 4  # sum dg partials
           + 3 * e * elem)  # autograd: dx = dy + dx_squash
    if mode == "input":
        # per-row dg_r partials (one row per channel block) and their sum
        bwd += 2 * math.ceil(c / block_c) * m * 4 + m * 4
        # g_r = 1 + tanh(x·v) stays torch: count its ops with the dispatch counter
        gate = GateAdd("input", c, channel_dim)
        x = torch.zeros(shape).requires_grad_()
        with torch.no_grad(), ByteCounter() as counter:
            gate.row_gate(x)
        fwd += counter.bytes * elem // 4
        r = gate.row_gate(x)
        dr = torch.ones_like(r)
        with ByteCounter() as counter:
            torch.autograd.grad(r, (x, gate.v), dr)
        bwd += counter.bytes * elem // 4 + 3 * e * elem  # + one more accumulation into dx
    return fwd, bwd


def run(shapes: dict[str, tuple[tuple[int, ...], int]], warmup: int, reps: int, rounds: int,
        sms_model: int, compile: bool = False) -> list[dict]:
    """One row per (layout, path). Timings: each round times every path in turn, and a path
    keeps its best round's medians — other processes on a shared machine come in bursts."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    have_triton = importlib.util.find_spec("triton") is not None
    fused = device.type == "cuda" and have_triton
    sms = sms_model
    if fused:
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    rows = []
    for layout, (shape, cd) in shapes.items():
        torch.manual_seed(0)
        x, h = torch.randn(shape, device=device), torch.randn(shape, device=device)
        pairs = make_pairs(shape[cd], cd, device, fused, compile)
        best = {name: (math.inf, math.inf) for name in pairs}
        for _ in range(rounds):
            for name, pair in pairs.items():
                fwd_ms, bwd_ms = timings(pair, x, h, warmup, reps)
                best[name] = (min(best[name][0], fwd_ms), min(best[name][1], bwd_ms))
        for name, pair in pairs.items():
            # fused and compiled kernels are not aten ops: the former's bytes come from
            # fused_bytes, the latter's are not counted
            eager = "fused" not in name and "compiled" not in name
            fwd_b, bwd_b = count_bytes(pair, x, h) if eager else (None, None)
            rows.append({"layout": layout, "shape": shape, "path": name, "fwd_ms": best[name][0],
                         "bwd_ms": best[name][1], "fwd_bytes": fwd_b, "bwd_bytes": bwd_b})
        if not have_triton:
            continue
        for mode in GATE_MODES:
            fwd_b, bwd_b = fused_bytes(shape, cd, mode, x.element_size(), sms)
            name = f"AGU fused {mode}"
            row = next((r for r in rows if r["layout"] == layout and r["path"] == name), None)
            if row is None:
                row = {"layout": layout, "shape": shape, "path": name, "fwd_ms": None,
                       "bwd_ms": None}
                rows.append(row)
            row.update(fwd_bytes=fwd_b, bwd_bytes=bwd_b)
    return rows


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ratio(v: float | None, base: float | None) -> str:
    return "-" if v is None or not base else f"{v / base:.2f}x"


def table(rows: list[dict]) -> str:
    head = ("| layout | path | fwd ms | bwd ms | fwd MB | bwd MB | fwd time | bwd time "
            "| fwd bytes | bwd bytes |")
    lines = [head, "|" + "---|" * 10,]
    for row in rows:
        base = next(r for r in rows if r["layout"] == row["layout"])  # the norm + add row
        mb = lambda v: None if v is None else v / 1e6
        lines.append(
            f"| {row['layout']} {tuple(row['shape'])} | {row['path']} | {_fmt(row['fwd_ms'])} "
            f"| {_fmt(row['bwd_ms'])} | {_fmt(mb(row['fwd_bytes']), 1)} "
            f"| {_fmt(mb(row['bwd_bytes']), 1)} | {_ratio(row['fwd_ms'], base['fwd_ms'])} "
            f"| {_ratio(row['bwd_ms'], base['bwd_ms'])} "
            f"| {_ratio(row['fwd_bytes'], base['fwd_bytes'])} "
            f"| {_ratio(row['bwd_bytes'], base['bwd_bytes'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per measurement")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all paths")
    parser.add_argument("--compile", action="store_true",
                        help="also time every torch path under torch.compile (slow to start)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: on a shared machine a second "
                             "OpenMP thread stalls whole ops whenever its core is taken)")
    parser.add_argument("--sms", type=int, default=132,
                        help="SM count for the fused bytes model off-GPU (132: H100 SXM)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        shapes = {"tokens": ((8, 64, 128), -1), "maps": ((8, 32, 16, 16), 1)}
        warmup, reps, rounds = 2, args.reps or 5, args.rounds or 1
    else:
        shapes = {"tokens": ((32, 197, 384), -1), "maps": ((32, 64, 56, 56), 1)}
        warmup, reps, rounds = 3, args.reps or 20, args.rounds or 3
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fp32; latency: best of {rounds} rounds of the "
          f"median of {reps} runs")
    if device != "cuda":
        print("AGU fused: not timed — the Triton kernels need a CUDA GPU and none is present "
              "(on CPU Triton runs only in its interpreter, a correctness tool, not a speed "
              f"one); its bytes are the kernels' model with P set for {args.sms} SMs.")
    elif importlib.util.find_spec("triton") is None:
        print("AGU fused: skipped — triton is not installed (pip install triton).")
    rows = run(shapes, warmup, reps, rounds, args.sms, args.compile)
    print(table(rows))
    print("ratios are against the first row of each layout (the torch norm + add).")


if __name__ == "__main__":
    main()
