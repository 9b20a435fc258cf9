"""Low-precision attention options against fp32 ``F.scaled_dot_product_attention``.

For each sequence length T and head dim D, per option: max and mean absolute error of the
output vs fp32 SDPA; bytes of the score and probability matrices and of the whole attention
working set (unfused and fused, see :mod:`minsearch.attention.cost`); forward latency as a
ratio to fp32 SDPA (and bf16 SDPA on a GPU), timed side by side, interleaved, in one run.

Each option runs the path ``LowpSDPA`` picks for inference on this device: on CPU, real int8
matmuls (``torch._int_mm``) for int8 Q·K^T, the fake-quant reference otherwise; on a CUDA GPU,
the fused Triton kernel.

    python benchmarks/attention.py --quick          # T 64..1024, D 32/64: ~1 min on 2 cores
    python benchmarks/attention.py                  # T 64..4096, D 32/64/128
    python benchmarks/attention.py --out bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from minsearch.attention import LowpSDPA
from minsearch.attention.cost import attention_bytes
from minsearch.catalog.registry import get_option, options_for

OPTIONS = ("fp32", "bf16", "fp8", "int8", "sage", "qaas", "ternary")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_call(fn, n: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / n


def side_by_side(fns: dict[str, object], reps: int, device: torch.device,
                 min_round_s: float = 0.01) -> dict[str, float]:
    """Median seconds per call of each function: warmed up, each round calls every function
    in turn (``n`` times, ``n`` chosen so a round of one function lasts >= ``min_round_s``),
    so that drift and other load on the machine hit all of them alike."""
    calls = {}
    for name, fn in fns.items():
        fn()
        once = _per_call(fn, 1, device)
        calls[name] = max(1, int(min_round_s / max(once, 1e-7)))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(_per_call(fn, calls[name], device))
    return {k: statistics.median(v) for k, v in times.items()}


def inputs(B: int, H: int, T: int, D: int, device: torch.device, seed: int = 0):
    """Gaussian Q, K, V (B, H, T, D); K gets a per-channel offset, as trained keys do."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    k = k + 2.0 * torch.randn(1, 1, 1, D, generator=g)
    return q.to(device), k.to(device), v.to(device)


@torch.no_grad()
def bench_case(T: int, D: int, options: tuple[str, ...], B: int, H: int, reps: int,
               device: torch.device) -> list[dict]:
    q, k, v = inputs(B, H, T, D, device)
    ref = F.scaled_dot_product_attention(q, k, v)
    fp32_bytes = attention_bytes(get_option("attention", "fp32").make_config(), B, H, T, D)
    modules = {name: LowpSDPA(get_option("attention", name).make_config(), H).to(device).eval()
               for name in options}
    fns = {"sdpa_fp32": lambda: F.scaled_dot_product_attention(q, k, v)}
    if device.type == "cuda":
        qb, kb, vb = (t.bfloat16() for t in (q, k, v))
        fns["sdpa_bf16"] = lambda: F.scaled_dot_product_attention(qb, kb, vb)
    for name, m in modules.items():
        fns[name] = (lambda m=m: m(q, k, v))
    times = side_by_side(fns, reps, device)
    rows = []
    for name, m in modules.items():
        out = m(q, k, v).float()
        err = (out - ref).abs()
        nbytes = attention_bytes(m.spec, B, H, T, D)
        row = {
            "T": T, "D": D, "option": name, "path": m.path(q, None, 0.0),
            "max_err": err.max().item(), "mean_err": err.mean().item(),
            "scores_MiB": nbytes.scores / 2**20, "probs_MiB": nbytes.probs / 2**20,
            "unfused_MiB": nbytes.unfused / 2**20, "fused_MiB": nbytes.fused / 2**20,
            "unfused_vs_fp32": fp32_bytes.unfused / nbytes.unfused,
            "fused_vs_fp32": fp32_bytes.fused / nbytes.fused,
            "ms": times[name] * 1e3, "sdpa_fp32_ms": times["sdpa_fp32"] * 1e3,
            "latency_vs_fp32": times[name] / times["sdpa_fp32"],
        }
        if "sdpa_bf16" in times:
            row["latency_vs_bf16"] = times[name] / times["sdpa_bf16"]
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    gpu = any("latency_vs_bf16" in r for r in rows)
    head = ("| T | D | option | path | max err | mean err | S MiB | P MiB | unfused MiB (x less) "
            "| fused MiB (x less) | ms | latency / sdpa fp32 |")
    head += " / sdpa bf16 |" if gpu else ""
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['T']} | {r['D']} | {r['option']} | {r['path']} | {r['max_err']:.2e} | "
                f"{r['mean_err']:.2e} | {r['scores_MiB']:.2f} | {r['probs_MiB']:.3f} | "
                f"{r['unfused_MiB']:.2f} ({r['unfused_vs_fp32']:.2f}x) | "
                f"{r['fused_MiB']:.3f} ({r['fused_vs_fp32']:.2f}x) | {r['ms']:.2f} | "
                f"{r['latency_vs_fp32']:.2f} |")
        if gpu:
            line += f" {r['latency_vs_bf16']:.2f} |"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T 64..1024, D 32/64")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="write the rows as JSON")
    args = parser.parse_args()
    options = tuple(args.options.split(","))
    unknown = sorted(set(options) - set(options_for("attention")))
    if unknown:
        parser.error(f"unknown attention options {unknown}; known: {options_for('attention')}")
    lengths = (64, 256, 1024) if args.quick else (64, 256, 1024, 4096)
    dims = (32, 64) if args.quick else (32, 64, 128)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; B={args.batch}, H={args.heads}")
    bench_case(lengths[0], dims[0], options, args.batch, args.heads, 3, device)  # warm-up:
    # the first timed calls of a process (thread pools, allocator) are slow; discard them.
    rows = []
    for T in lengths:
        reps = args.reps or (7 if T <= 1024 else 3)
        for D in dims:
            rows += bench_case(T, D, options, args.batch, args.heads, reps, device)
    print_table(rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "device": str(device), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
