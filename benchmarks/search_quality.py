"""Search quality on an exhaustive table: how much of the front each strategy finds, at what
compute, with how many false discoveries.

Two steps, so that the second needs no training:

1. ``build`` trains every genome of a small enumerable digits ViT space (block norms
   keep/identity/dyt, final norm keep/identity, the residuals of each of the 2 blocks
   keep/rezero/drop-branch, activation keep/relu: 108 genomes) with each of ``--seeds``
   training seeds, once, at the task's full budget (``epochs``), and records the test accuracy
   after every epoch (epoch 0 = the parent with the surgery applied, before fine-tuning) as
   well as the final objectives. The recipe has no learning-rate schedule, so the value after
   epoch ``e`` is exactly what a trial stopped at ``e`` epochs would have measured: the replay
   can use low-fidelity values without retraining. One parent per seed: a seed is a whole
   replicate of the search's pipeline (``seed`` changes the parent's key), and a candidate
   trained with seed ``s`` is fine-tuned from parent ``s``. The table is written as CSV
   (``benchmarks/data/digits_vit_grid.csv``), one row per (genome, seed).
2. ``replay`` replays strategies on that table (see :mod:`benchmarks.quality_replay`) and
   prints, per strategy and budget, the hypervolume reached, the compute spent and the false
   discoveries, as mean and spread over the replays.

    nice -n 10 python benchmarks/search_quality.py build [--seeds 3 | --seeds 3,4,5] [--workers 2]
    python benchmarks/search_quality.py replay [--replays 20]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmarks.quality_replay import Score, Table

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "data" / "digits_vit_grid.csv"
TASK = ROOT / "tasks" / "digits_vit.yaml"
OBJECTIVES = ["accuracy", "param_bytes", "peak_mem_infer_bytes", "flops"]
SPACE = {
    "sampler": "random",
    "genes": [
        {"kind": "norm", "tie": "kind", "sites": "blocks\\..*",
         "options": ["keep", "identity", "dyt"]},
        {"kind": "norm", "name": "final_norm", "sites": "norm", "options": ["keep", "identity"]},
        {"kind": "residual", "tie": "block", "options": ["keep", "rezero", "drop-branch"]},
        {"kind": "activation", "tie": "kind", "options": ["keep", "relu"]},
    ],
}

_WORKER: dict = {}  # per build process: task, genes, data, parents by seed


def _setup(seeds: list[int], parent_dir: str, parents: bool = True) -> None:
    """Load the task, genes, data (and every seed's cached parent) once per process."""
    import torch

    from minsearch.models import build_model
    from minsearch.search.space import SpaceConfig, resolve_genes
    from minsearch.sites import find_sites
    from minsearch.tasks.candidate import example_input, load_or_train_parent
    from minsearch.tasks.config import load_task
    from minsearch.tasks.data import load_data

    torch.set_num_threads(1)
    _WORKER["parent_dir"] = parent_dir
    base = load_task(TASK)
    # The table's recipe: one seed per row, plain cross-entropy (the shipped task distils since
    # issue 9; the committed table was trained without it).
    flat = {**base.to_flat(), "objectives": OBJECTIVES, "device": "cpu", "seeds": 1,
            "distill": None}
    tasks = {s: type(base).from_flat({**flat, "seed": s}) for s in seeds}
    data = load_data(base.data)
    genes = resolve_genes(SpaceConfig.from_json(SPACE),
                          find_sites(build_model(base.model), example_input(data, batch=2)))
    _WORKER.update(tasks=tasks, genes=genes, data=data)
    if parents:
        _WORKER["parents"] = {s: load_or_train_parent(tasks[s], data, parent_dir)[0]
                              for s in seeds}


def _train_parent(seed: int) -> int:
    """Train (and cache) seed ``seed``'s parent in a worker; its process was set up with
    ``parents=False``."""
    from minsearch.tasks.candidate import load_or_train_parent

    load_or_train_parent(_WORKER["tasks"][seed], _WORKER["data"], _WORKER["parent_dir"])
    return seed


def genomes() -> list[dict[str, str]]:
    """Every genome of the space, ``{gene name: label}``, in a fixed order."""
    genes = _WORKER["genes"]
    return [dict(zip([g.name for g in genes], combo, strict=True))
            for combo in itertools.product(*[g.labels for g in genes])]


def train_one(params: dict[str, str], seed: int) -> dict:
    """Fine-tune one genome with one seed for the task's epochs; one table row."""
    import torch

    from minsearch.objectives import measure_all
    from minsearch.search.space import genome_rules
    from minsearch.tasks.candidate import build_candidate
    from minsearch.tasks.train import evaluate, fit

    task, data = _WORKER["tasks"][seed], _WORKER["data"]
    device = torch.device("cpu")
    start = time.perf_counter()
    row: dict = {**params, "seed": seed}
    try:
        model, _ = build_candidate(task, genome_rules(_WORKER["genes"], params), data,
                                   parent_state=_WORKER["parents"][seed], device=device)
        row["acc_0"] = evaluate(model, data, data.test, device=device)

        def after(epoch: int, _curve: dict) -> None:  # the test accuracy after every epoch
            row[f"acc_{epoch + 1}"] = evaluate(model, data, data.test, device=device)

        fit(model, data, task.recipe, device=device, on_epoch=after)
        values, _ = measure_all(model, data, task, device)
        row.update(values)
        row["failed"] = ""
    except Exception as err:  # a diverged candidate is a row too: the replay counts it failed
        row["failed"] = f"{type(err).__name__}: {err}"[:200]
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def _work(item: tuple[int, int]) -> dict:
    index, seed = item
    return train_one(genomes()[index], seed)


def build(seeds: list[int], workers: int, out: Path, limit: int | None) -> None:
    """Train every (genome, seed) once; write the table to ``out`` (CSV)."""
    import multiprocessing

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="minsearch-quality-") as parent_dir:
        start = time.perf_counter()
        _setup(seeds, parent_dir, parents=False)
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_setup,
                          initargs=(seeds, parent_dir, False)) as pool:
            pool.map(_train_parent, seeds)  # one parent per seed, cached in parent_dir
        print(f"parents for seeds {seeds}: {time.perf_counter() - start:.0f} s", flush=True)
        items = [(i, s) for s in seeds for i in range(len(genomes()))][:limit]
        rows = []
        with context.Pool(workers, initializer=_setup, initargs=(seeds, parent_dir)) as pool:
            for n, row in enumerate(pool.imap_unordered(_work, items), 1):
                rows.append(row)
                if n % 20 == 0 or n == len(items):
                    print(f"{n}/{len(items)} trained, {time.perf_counter() - start:.0f} s",
                          flush=True)
    frame = pd.DataFrame(rows)
    gene_names = [g.name for g in _WORKER["genes"]]
    frame = frame.sort_values(["seed", *gene_names], kind="stable")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.10g")
    print(f"wrote {len(frame)} rows to {out} in {time.perf_counter() - start:.0f} s "
          f"({frame['seconds'].sum() / max(len(frame), 1):.1f} s per training)")


def remeasure_costs(path: Path) -> None:
    """Measure the cost-only objectives of every genome of the table at ``path`` again (on
    the untrained candidate: they depend on its structure alone) and rewrite those columns;
    no training. For a table built before a change to what a candidate holds."""
    import pandas as pd
    import torch

    from minsearch.objectives import measure_all
    from minsearch.search.space import genome_rules
    from minsearch.tasks.candidate import build_candidate

    _setup([0], "", parents=False)
    task, data = _WORKER["tasks"][0], _WORKER["data"]
    frame = pd.read_csv(path, dtype={"failed": str})
    names = [g.name for g in _WORKER["genes"]]
    costs = ["param_bytes", "peak_mem_infer_bytes", "flops"]
    changed = 0
    present = [dict(zip(names, r, strict=True))
               for r in frame[names].drop_duplicates().itertuples(index=False)]
    for params in present:
        model, _ = build_candidate(task, genome_rules(_WORKER["genes"], params), data,
                                   device=torch.device("cpu"))
        values, _ = measure_all(model, data, task, torch.device("cpu"))
        rows = (frame[names] == pd.Series(params)).all(axis=1)
        old = frame.loc[rows, costs].iloc[0].to_numpy(dtype=float)
        changed += int(any(old != [values[c] for c in costs]))
        for c in costs:
            frame.loc[rows, c] = values[c]
    frame.to_csv(path, index=False, float_format="%.10g")
    print(f"re-measured the costs of {len(present)} genomes; {changed} changed; wrote {path}")


def describe(table: Table) -> list[str]:
    """Facts about the table: the baseline per seed, the seed noise, and how well a short
    training predicts the full one (Spearman's rank correlation over genomes of one seed's
    accuracy after ``e`` epochs with the seed-averaged final accuracy)."""
    from scipy.stats import spearmanr

    final = table.acc[:, :, -1]
    ok = ~np.isnan(final).any(axis=1)
    lines = [f"baseline accuracy per seed: "
             f"{', '.join(f'{a:.3f}' for a in final[table.baseline])}; same-genome accuracy "
             f"across seeds: sd {np.nanmean(np.nanstd(final, axis=1, ddof=1)):.4f} (mean over "
             f"genomes); failed (genome, seed): {int(np.isnan(final).sum())}"]
    mean = final[ok].mean(axis=1)
    parts = []
    for e in range(table.epochs + 1):
        rho = np.mean([spearmanr(table.acc[ok, s, e], mean).statistic
                       for s in range(table.seeds)])
        parts.append(f"{e}: {rho:.2f}")
    lines.append("rank correlation of one seed's accuracy after e epochs with the seed-mean "
                 "final accuracy: " + ", ".join(parts))
    return lines


def summary(scores: Sequence[Score]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each field over the replays."""
    fields = ("hv", "gain", "compute", "false", "size")
    return {f: (float(np.mean([getattr(s, f) for s in scores])),
                float(np.std([getattr(s, f) for s in scores]))) for f in fields}


def run_replays(path: Path, replays: int, budgets: Sequence[float],
                names: Sequence[str] | None = None, halving: Sequence[str] = ()) -> None:
    """Print strategies x budgets (mean ± sd over ``replays``) and which strategy reaches the
    target (>= 0.95 of the gain, <= 30% false discoveries) at the least compute."""
    from benchmarks.quality_replay import (
        default_halving,
        load_table,
        replay_scores,
        strategies,
        truth,
    )

    table = load_table(path)
    true = truth(table)
    print(f"table: {table.size} genomes x {table.seeds} seeds x {table.epochs} epochs; true "
          f"front {len(true.front)} genomes, hypervolume {true.hv_front:.4f} (baseline alone "
          f"{true.hv_baseline:.4f}); {int(true.feasible.sum())} feasible")
    print("\n".join(describe(table)))
    print(f"halving: {default_halving(table.epochs)} (rungs EPOCHSxSEEDS+SLACK / reduction)")
    print(f"{'strategy':<28} {'budget':>6} {'compute':>8} {'hv':>13} {'gain':>13} "
          f"{'false disc.':>13} {'front':>5}")
    reached: dict[str, float] = {}
    chosen = strategies(table.epochs, halving)
    names = [*names, *(f"halving[{spec}]" for spec in halving)] if names else None
    for name, budget in itertools.product(names or list(chosen), budgets):
        m = summary(replay_scores(table, chosen[name], budget, replays))
        print(f"{name:<28} {budget:>6.2f} {m['compute'][0]:>8.3f} "
              f"{m['hv'][0]:>7.4f}±{m['hv'][1]:.3f} {m['gain'][0]:>7.3f}±{m['gain'][1]:.3f} "
              f"{m['false'][0]:>7.3f}±{m['false'][1]:.3f} {m['size'][0]:>5.1f}", flush=True)
        if m["gain"][0] >= 0.95 and m["false"][0] <= 0.30 and name not in reached:
            reached[name] = m["compute"][0]
    for name in names or list(chosen):
        where = f"at {reached[name]:.3f} of the grid's compute" if name in reached else "not"
        print(f"target (gain >= 0.95, false <= 0.30) reached by {name}: {where}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the exhaustive table (minutes)")
    b.add_argument("--seeds", default="3",
                   help="a count N (seeds 0..N-1) or a comma-separated list, e.g. 3,4,5 for a "
                        "table out of the sample the rule was tuned on")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--out", type=Path, default=TABLE)
    b.add_argument("--limit", type=int, default=None, help="train only the first N (timing)")
    c = sub.add_parser("costs", help="re-measure the cost-only columns (no training)")
    c.add_argument("--table", type=Path, default=TABLE)
    r = sub.add_parser("replay", help="replay strategies on the table (no training)")
    r.add_argument("--table", type=Path, default=TABLE)
    r.add_argument("--replays", type=int, default=20)
    r.add_argument("--budgets", default="0.1,0.2,0.25,0.3,0.5")
    r.add_argument("--strategies", default=None, help="comma-separated; default: all")
    r.add_argument("--halving", action="append", default=[],
                   help="an extra halving strategy, e.g. '1x1+0.05,8x1,8x3/3' (rungs of "
                        "EPOCHSxSEEDS[+SLACK], then /REDUCTION); repeatable")
    args = parser.parse_args(argv)
    if args.command == "build":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        seeds = ([int(s) for s in args.seeds.split(",")] if "," in args.seeds
                 else list(range(int(args.seeds))))
        build(seeds, args.workers, args.out, args.limit)
    elif args.command == "costs":
        remeasure_costs(args.table)
    else:
        sys.path.insert(0, str(ROOT))
        run_replays(args.table, args.replays, [float(b) for b in args.budgets.split(",")],
                    None if args.strategies is None else args.strategies.split(","),
                    args.halving)


if __name__ == "__main__":
    main()
