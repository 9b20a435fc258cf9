"""The multi-fidelity searcher without Ray: jobs as trials, Optuna told only top-rung means,
PRUNED for the rest at the end, nothing trained twice, state that survives pickling."""

from __future__ import annotations

import json
import pickle

from minsearch.objectives.constraint import Constraint
from minsearch.search.halving_searcher import (
    RUNG_EPOCHS,
    RUNG_VALUES,
    WORK,
    HalvingSearcher,
    genome_name,
)
from minsearch.search.promotion import HalvingConfig, Rung
from tests.search.test_searcher import DIRECTIONS, GENES, space

HALVING = HalvingConfig((Rung(1, 1, slack=0.1), Rung(2, 2)), ("max", "min"),
                        Constraint("accuracy", "max", 0.05), reduction=2, seeds=(0, 1))
SIZE = {"keep": 100.0, "identity": 60.0, "dyt": 80.0, "rezero": 1.0}


def accuracy(params, seed, epoch):
    """A made-up table: identity costs accuracy, rezero a little; epoch 1 is 0.05 lower."""
    acc = 0.9 - 0.03 * (params["norm"] == "identity") - 0.01 * (params["residual"] == "rezero")
    return acc - 0.05 * (epoch == 1) + 0.01 * seed


def train(config):
    """What the trainable would report: the objectives at each rung epoch of its work."""
    params = {g.name: config[g.name] for g in GENES}
    size = SIZE[params["norm"]] + SIZE[params["residual"]]
    values = {str(seed): {str(e): [accuracy(params, seed, e), size]
                          for e in config[RUNG_EPOCHS] if start < e <= stop}
              for seed, start, stop in config[WORK]}
    return {"final": 1, RUNG_VALUES: json.dumps(values)}


def drive(searcher, steps, roundtrip=False):
    trained, configs = [], []
    for i in range(steps):
        if roundtrip:
            searcher = pickle.loads(pickle.dumps(searcher))
        config = searcher.suggest(str(i))
        if config in (None, searcher.FINISHED):
            break
        configs.append(config)
        trained += [(genome_name({g.name: config[g.name] for g in GENES}), s, e)
                    for s, a, b in config[WORK] for e in range(a + 1, b + 1)]
        searcher.on_trial_complete(str(i), train(config))
    return searcher, trained, configs


def make():
    return HalvingSearcher(GENES, space("random", trials=6), DIRECTIONS,
                           Constraint("accuracy", "max", 0.05), None, HALVING)


def test_jobs_train_each_epoch_once_and_optuna_sees_only_top_rung_means():
    searcher, trained, configs = drive(make(), 40)
    assert configs[0][WORK] == [[0, 0, 2], [1, 0, 2]]  # the baseline to the top first
    assert configs[0]["norm"] == "keep" and configs[0]["residual"] == "keep"
    assert len(trained) == len(set(trained))  # no (genome, seed, epoch) twice
    genomes = {t[0] for t in trained}
    assert len(genomes) == 6  # the whole space was screened, then the search ran out
    searcher.close()
    trials = searcher.study.trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    top = [g for g in genomes if searcher.halving_state.at_rung(HALVING, g, 1)]
    assert len(done) == len(top) >= 2
    for t in done:  # told the mean of seeds 0 and 1 after 2 epochs: never an early value
        expected = (accuracy(t.params, 0, 2) + accuracy(t.params, 1, 2)) / 2
        assert abs(t.values[0] - expected) < 1e-9
    assert {t.state.name for t in trials} - {"COMPLETE"} <= {"PRUNED", "FAIL"}


def test_a_pickled_searcher_decides_the_same():
    _, straight, _ = drive(make(), 12)
    _, resumed, _ = drive(make(), 12, roundtrip=True)
    assert resumed == straight


def test_a_trial_that_reports_nothing_is_run_again_and_an_error_fails_the_genome():
    searcher = make()
    config = searcher.suggest("0")
    searcher.on_trial_complete("0", {"final": 1})  # stopped before reporting: abandoned
    again = searcher.suggest("1")
    assert again[WORK] == config[WORK]
    searcher.on_trial_complete("1", train(again))
    searcher.suggest("2")
    searcher.on_trial_complete("2", error=True)
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "FAIL"]


def test_the_search_ends_when_the_next_job_no_longer_fits_the_epoch_budget():
    import dataclasses

    searcher = make()
    searcher._budget = 7  # the baseline's 4 epoch-trainings, 2 one-epoch screenings; then
    searcher, trained, configs = drive(searcher, 40)  # a promotion due: 3 more, over 7
    assert len(trained) == 6 and len(configs) == 3
    assert searcher.suggest("last") == searcher.FINISHED
    assert searcher.study.user_attrs["minsearch_halving_finished"] is True
    states = [t.state.name for t in searcher.study.trials if t.state.name != "FAIL"]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]  # close() told the rest
    few = HalvingSearcher(GENES, dataclasses.replace(space("random"), trials=3), DIRECTIONS,
                          Constraint("accuracy", "max", 0.05), None, HALVING)
    _, trained, _ = drive(few, 40)
    assert len({t[0] for t in trained}) == 3  # `trials` caps the genomes screened


def test_a_genome_refused_by_a_budget_is_never_promoted_and_told_pruned():
    searcher = make()
    searcher.on_trial_complete("0", train(searcher.suggest("0")))
    config = searcher.suggest("1")
    searcher.on_trial_complete("1", {"rejected": 1, "reason": "over budget"})
    name = genome_name({g.name: config[g.name] for g in GENES})
    assert name in searcher.halving_state.failed
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "PRUNED"]
