"""Exact vs approximate invertibility, and minsearch's flows vs a flow library (zuko), on
digits (8x8, 17 levels) and a 2-D set, several seeds, one table with the ratios.

Every variant is trained the same way: the same data and dequantization, AdamW, the same
batch size and number of steps (``--epochs`` passes), from the same seed. Rows:

- ``exact``: minsearch's coupling flow (``glow_digits`` / ``mlp_flow``): exact inverse and
  log-det;
- ``residual-sn``: every coupling replaced by a spectrally normalised residual block
  (Lip(g) <= 0.9), 5-term power-series log-det while training, inverse by <= 50 iterations;
- ``residual-sn-fast``: the same with 2 series terms and <= 3 iterations (the "fewer
  iterations / terms" approximation);
- ``residual-soft``: residual blocks with a soft Lipschitz penalty, no hard constraint;
- ``zuko-realnvp``: zuko's RealNVP (a flow library users already use) with as many
  transforms as minsearch's flow has steps and its hidden width chosen to match the parameter
  count (digits flattened to 64 features: zuko has no multi-scale conv flow);
- ``normflows-residual``: normflows' Residual Flow (Chen et al.'s code lineage): as many
  residual blocks (``LipschitzMLP``, Lipschitz 0.9) + ActNorm as minsearch has steps, width
  matched to the parameter count; its own unbiased Russian-roulette log-det in training. Its
  evaluation log-det is exact in 2-D and its unbiased estimator otherwise (digits).

Measured on the test split: bits/dim from the exact log-likelihood (residual blocks: the
brute-force Jacobian log-det; zuko: its exact log-det); train step time (median ms of the
timed training steps, optimiser included); sampling time (median ms to draw ``--samples``);
the inversion error (max |x - f^-1(f(x))|) and the share of test points whose iterative
inverse did not converge; for residual variants, also the bits/dim their *training* log-det
estimator (the power series) reports on the same test points. Mean ± std over seeds; ratios
are to ``exact`` of the same seed, then averaged. CPU, one thread unless ``--threads``.

    python benchmarks/flows.py                 # digits + moons, 3 seeds, 30 epochs (~25 min)
    python benchmarks/flows.py --quick         # 1 seed, 2 epochs (a smoke run)
    python benchmarks/flows.py --variants normflows-residual   # one row (and exact)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from minsearch.flows.base import InverseTrack
from minsearch.flows.residual import logdet_mode, residual_blocks
from minsearch.flows.zoo import glow_digits, mlp_flow
from minsearch.objectives.latency import median_ms
from minsearch.surgery import apply_
from minsearch.tasks.config import DataConfig, RecipeConfig
from minsearch.tasks.data import load_data
from minsearch.tasks.density_train import example_bits_per_dim, train_step
from minsearch.tasks.train import make_optimizer

VARIANTS = {
    "exact": None,
    "residual-sn": "residual-sn",
    "residual-sn-fast": {"name": "residual-sn", "terms": 2, "iters": 3},
    "residual-soft": "residual-soft",
}
PEER = "zuko-realnvp"
RESIDUAL_PEER = "normflows-residual"


class ZukoDensity(nn.Module):
    """zuko's RealNVP behind the density-task contract: ``forward(x) -> log p(x)``."""

    def __init__(self, shape: tuple[int, ...], transforms: int, hidden: int):
        import zuko

        super().__init__()
        self.shape = shape
        features = int(torch.tensor(shape).prod())
        self.flow = zuko.flows.RealNVP(features=features, transforms=transforms,
                                       hidden_features=(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x.flatten(1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.flow().sample((n,)).view(n, *self.shape)


class NormflowsResidual(nn.Module):
    """normflows' Residual Flow behind the density-task contract."""

    def __init__(self, shape: tuple[int, ...], blocks: int, hidden: int):
        import normflows as nf

        super().__init__()
        self.shape = shape
        features = int(torch.tensor(shape).prod())
        flows = []
        for _ in range(blocks):
            net = nf.nets.LipschitzMLP([features, hidden, hidden, features],
                                       lipschitz_const=0.9, init_zeros=True)
            flows += [nf.flows.Residual(net, reduce_memory=True), nf.flows.ActNorm(features)]
        prior = nf.distributions.DiagGaussian(features, trainable=False)
        self.flow = nf.NormalizingFlow(prior, flows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(x.flatten(1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.flow.sample(n)[0].view(n, *self.shape)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_peer(cls: type[nn.Module], shape: tuple[int, ...], transforms: int,
                 target: int) -> nn.Module:
    """The peer of width 4, 8, ..., 256 whose parameter count is closest to ``target``."""
    candidates = [cls(shape, transforms, h) for h in range(4, 257, 4)]
    return min(candidates, key=lambda m: abs(params(m) - target))


def build(dataset: str, variant: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if dataset == "digits":
        model, shape, steps = glow_digits(steps=3, hidden=32, seed=seed), (1, 8, 8), 6
    else:
        model, shape, steps = mlp_flow(dims=2, steps=4, hidden=32, seed=seed), (2,), 4
    if variant in (PEER, RESIDUAL_PEER):
        torch.manual_seed(seed)
        cls = ZukoDensity if variant == PEER else NormflowsResidual
        return matched_peer(cls, shape, steps, params(model))
    if VARIANTS[variant] is not None:
        apply_(model, {"invertibility:*": VARIANTS[variant]}, torch.zeros(2, *shape))
    return model


def mean_bits_per_dim(model: nn.Module, data) -> float:
    try:
        return float(example_bits_per_dim(model, data, data.test).mean())
    except RuntimeError:  # Diverged: a non-finite likelihood
        return float("nan")


def run(dataset: str, variant: str, seed: int, epochs: int, samples: int) -> dict[str, float]:
    data = load_data(DataConfig(dataset=f"density:{dataset}", data_seed=0))
    recipe = RecipeConfig(lr=3e-3, weight_decay=0.0, batch_size=64 if dataset == "digits"
                          else 128, grad_clip=5.0, seed=seed)
    model = build(dataset, variant, seed)
    optimizer = make_optimizer(model, recipe)
    step_ms = []
    model.train()
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed * 10_007 + epoch)
        for x, _ in data.batches(data.train, recipe.batch_size, generator=generator):
            start = time.perf_counter()
            loss = train_step(model, optimizer, x, recipe)
            step_ms.append((time.perf_counter() - start) * 1e3)
            if not torch.isfinite(loss):
                return {"diverged": 1.0, "params": params(model)}
    model.eval()
    bpd = mean_bits_per_dim(model, data)
    gen = torch.Generator().manual_seed(0)
    sample_ms = median_ms(lambda: model.sample(samples, generator=gen), 10, 2,
                          torch.device("cpu"))
    estimated = float("nan")
    if any(True for _ in residual_blocks(model)):  # what the training estimator believes
        with logdet_mode(model, "series"):
            estimated = mean_bits_per_dim(model, data)
    out = {"params": params(model), "bits_per_dim": bpd, "estimated_bits_per_dim": estimated,
           "train_step_ms": statistics.median(step_ms), "sample_ms": sample_ms}
    if hasattr(model, "invert"):
        with torch.no_grad():
            x = torch.cat([x for x, _ in data.batches(data.test, 512)])
            track = InverseTrack()
            back = model.invert(model.transform(x)[0], track)
            error = (x - back).abs().flatten(1)
            error = torch.where(torch.isfinite(error), error, torch.full_like(error, float("inf")))
            out["inversion_error"] = float(error.max())
            out["inversion_failures"] = 0.0 if track.converged is None else float(
                (~track.converged).float().mean())
    return out


def summary(values: list[float]) -> str:
    """``mean ± std`` over seeds; seeds where the value is infinite (an inverse that blew up)
    are counted apart; ``n/a`` where nothing was measured."""
    known = [v for v in values if v == v]
    finite = [v for v in known if math.isfinite(v)]
    blown = f" (inf in {len(known) - len(finite)}/{len(known)} seeds)" \
        if len(finite) < len(known) else ""
    if not finite:
        return f"inf{blown}" if known else "n/a"
    mean = statistics.fmean(finite)
    if len(finite) == 1:
        return f"{mean:.4g}{blown}"
    return f"{mean:.4g} ± {statistics.stdev(finite):.2g}{blown}"


def cached_run(cache: Path | None, dataset: str, variant: str, seed: int, epochs: int,
               samples: int) -> dict[str, float]:
    """:func:`run`, its result kept in the JSON file ``cache`` (a long run can resume)."""
    key = f"{dataset}/{variant}/{seed}/{epochs}/{samples}"
    done = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    if key not in done:
        done[key] = run(dataset, variant, seed, epochs, samples)
        if cache is not None:
            cache.write_text(json.dumps(done, indent=1))
    return done[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "moons"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, PEER, RESIDUAL_PEER],
                        help="which rows (exact is always run: the ratios need it)")
    parser.add_argument("--cache", type=Path, help="JSON file keeping each run's result "
                                                    "(rerun to resume)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = 1, 2
    torch.set_num_threads(args.threads)
    print(f"# flows benchmark: torch {torch.__version__}, {platform.processor() or 'cpu'}, "
          f"{args.threads} thread(s), {args.epochs} epochs, {args.seeds} seed(s)")
    for dataset in args.datasets:
        samples = 64 if dataset == "digits" else 256
        results = {v: [cached_run(args.cache, dataset, v, s, args.epochs, samples)
                       for s in range(args.seeds)]
                   for v in dict.fromkeys(["exact", *args.variants])}
        print(f"\n## {dataset} (sampling: {samples} samples)\n")
        print("| variant | params | bits/dim | Δ bits/dim vs exact | train step ms | "
              "train speed vs exact | sample ms | inversion error (max) | not converged | "
              "bits/dim by the training estimator |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        exact = results["exact"]
        for variant, rows in results.items():
            get = lambda key, rows=rows: [r.get(key, float("nan")) for r in rows]  # noqa: E731
            rel = [(r["bits_per_dim"] - e["bits_per_dim"]) / e["bits_per_dim"] * 100
                   for r, e in zip(rows, exact, strict=True) if "bits_per_dim" in r]
            speed = [e["train_step_ms"] / r["train_step_ms"]
                     for r, e in zip(rows, exact, strict=True) if "train_step_ms" in r]
            print(f"| {variant} | {rows[0]['params']} | {summary(get('bits_per_dim'))} | "
                  f"{summary(rel)} % | {summary(get('train_step_ms'))} | {summary(speed)}x | "
                  f"{summary(get('sample_ms'))} | {summary(get('inversion_error'))} | "
                  f"{summary(get('inversion_failures'))} | "
                  f"{summary(get('estimated_bits_per_dim'))} |")


if __name__ == "__main__":
    main()
