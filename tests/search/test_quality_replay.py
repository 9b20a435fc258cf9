"""The replay logic of ``benchmarks/search_quality.py`` on a tiny synthetic table whose true
front is known by construction (seconds, no training)."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from benchmarks.quality_replay import (
    COSTS,
    halving_replay,
    load_table,
    parse_halving,
    sampler_replay,
    score,
    truth,
)
from minsearch.search.promotion import Rung

GENES = ["a", "res@blocks.0"]  # a gene name as minsearch spells one
LABELS = ["keep", "x", "y"]
EPOCHS = 2
# (a, b) -> (mean accuracy at the full budget, param_bytes). keep/keep is the baseline.
DESIGN = {
    ("keep", "keep"): (0.90, 100),
    ("keep", "x"): (0.905, 80),   # on the front: more accurate, smaller
    ("keep", "y"): (0.85, 50),    # infeasible (0.05 below)
    ("x", "keep"): (0.90, 60),    # on the front: as accurate, smaller still
    ("x", "x"): (0.88, 90),       # feasible, dominated by (x, keep)
    ("x", "y"): (0.70, 10),       # infeasible
    ("y", "keep"): (0.89, 40),    # on the front: the smallest feasible
    ("y", "x"): (0.60, 95),       # infeasible
    ("y", "y"): (0.50, 20),       # infeasible
}
NOISE = [-0.01, 0.0, 0.01]  # per seed: the means above are exact


def write_table(path) -> None:
    rows = []
    for (a, b), (acc, size) in DESIGN.items():
        for seed, noise in enumerate(NOISE):
            final = acc + noise
            curve = {f"acc_{e}": final - 0.05 * (EPOCHS - e) for e in range(EPOCHS + 1)}
            rows.append({"a": a, "res@blocks.0": b, "seed": seed, **curve, "accuracy": final,
                         "param_bytes": size, "peak_mem_infer_bytes": 1000, "flops": 500,
                         "failed": "", "seconds": 1.0})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def table(tmp_path):
    write_table(tmp_path / "grid.csv")
    return load_table(tmp_path / "grid.csv", limit=0.02)


def index(table, a, b):
    return next(i for i, p in enumerate(table.params) if p == {"a": a, "res@blocks.0": b})


def test_table_and_truth(table):
    assert (table.size, table.seeds, table.epochs) == (9, 3, EPOCHS)
    assert table.params[table.baseline] == {"a": "keep", "res@blocks.0": "keep"}
    assert table.costs.shape == (9, len(COSTS))
    true = truth(table)
    expected = {index(table, *k) for k in [("keep", "keep"), ("keep", "x"), ("x", "keep"),
                                            ("y", "keep")]}
    # (keep, keep) is dominated by (keep, x) and (x, keep).
    assert true.front == frozenset(expected - {table.baseline})
    assert not true.feasible[index(table, "keep", "y")]
    assert true.hv_front > true.hv_baseline


def test_score_of_known_fronts(table):
    true = truth(table)
    perfect = score(table, true, sorted(true.front), table.size * EPOCHS)
    assert (perfect.hv, perfect.gain, perfect.compute, perfect.false) == pytest.approx(
        (1.0, 1.0, 1.0, 0.0))
    nothing = score(table, true, [table.baseline], EPOCHS)
    assert nothing.gain == pytest.approx(0.0)
    assert nothing.false == 1.0  # the baseline is not on this front
    # An infeasible member adds no hypervolume and is a false discovery.
    bad = score(table, true, [index(table, "x", "y"), index(table, "y", "keep")], 0)
    only = score(table, true, [index(table, "y", "keep")], 0)
    assert bad.hv == pytest.approx(only.hv)
    assert bad.false == 0.5 and only.false == 0.0


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_sampler_replay_spends_one_full_training_per_genome(table, sampler):
    front, spent = sampler_replay(table, sampler, trials=9, seed=0)
    assert spent == 9 * EPOCHS  # every genome once, repeats replaced at no cost
    # With all 9 seen, the only error left is a seed's noise (+-0.01 on every genome alike,
    # but each genome draws its own seed): the front holds feasible genomes only.
    assert front and all(truth(table).values[g][0] >= 0.97 for g in front)


def test_halving_replay_respects_the_budget_and_trains_nothing_twice(table):
    rungs = [Rung(1, 1, slack=0.05), Rung(EPOCHS, 1), Rung(EPOCHS, 3)]
    for budget, sampler in itertools.product((10, 20, 40, 100), (None, "tpe")):
        front, spent = halving_replay(table, rungs, 2, budget, seed=1, sampler=sampler)
        assert spent <= budget
        assert set(front) <= set(range(table.size))
    assert parse_halving("1x1+0.05,2x3/2@tpe") == (
        [Rung(1, 1, 0.05), Rung(2, 3, 0.0)], 2.0, "tpe")
    # With budget for everything, the top rung's 3-seed means are the exact means: the
    # front found equals the true one (plus the baseline when nothing dominates it).
    front, spent = halving_replay(table, [Rung(EPOCHS, 3)], 2, 1000, seed=0)
    assert spent == table.size * 3 * EPOCHS  # one rung: every genome, every seed, once
    assert set(front) - {table.baseline} == truth(table).front
