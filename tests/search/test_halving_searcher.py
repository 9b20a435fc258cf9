"""The multi-fidelity searcher without Ray: jobs as trials, Optuna told each genome's rung-0
(screening) means once, when its screening ends, paired with the baseline's rung-0 means;
PRUNED for the unscreened at the end; nothing trained twice; state that survives pickling."""

from __future__ import annotations

import json
import pickle

import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.halving_searcher import (
    RUNG_EPOCHS,
    RUNG_VALUES,
    WORK,
    HalvingSearcher,
    genome_name,
)
from minsearch.search.promotion import HalvingConfig, Rung
from minsearch.search.searcher import CONSTRAINT, DUPLICATE
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


def drive(searcher, steps, roundtrip=False, told=None):
    """Suggest and complete ``steps`` jobs one at a time; ``told`` (a list) gets, after each
    job, the study's ``{number: (state, values)}``."""
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
        if told is not None:
            told.append({t.number: (t.state.name, t.values) for t in searcher.study.trials})
    return searcher, trained, configs


def make():
    return HalvingSearcher(GENES, space("random", trials=6), DIRECTIONS,
                           Constraint("accuracy", "max", 0.05), None, HALVING)


def test_jobs_train_each_epoch_once_and_optuna_is_told_rung_0_means_once_per_genome():
    told = []
    searcher, trained, configs = drive(make(), 40, told=told)
    assert configs[0][WORK] == [[0, 0, 2], [1, 0, 2]]  # the baseline to the top first
    assert configs[0]["norm"] == "keep" and configs[0]["residual"] == "keep"
    assert len(trained) == len(set(trained))  # no (genome, seed, epoch) twice
    genomes = {t[0] for t in trained}
    assert len(genomes) == 6  # the whole space was screened, then the search ran out
    promoted = [i for i, c in enumerate(configs) if c[WORK][0][1] > 0]
    assert promoted, "no promotion ran"
    for i in promoted:  # a promotion tells Optuna nothing new
        assert told[i] == told[i - 1]
    searcher.close()
    trials = [t for t in searcher.study.trials if not t.user_attrs.get(DUPLICATE)]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6  # every genome screened
    base = accuracy(configs[0], 0, 1)  # the baseline's rung 0: seed 0 after 1 epoch
    for t in trials:  # the rung-0 value (seed 0, epoch 1), never a top-rung mean
        assert t.values[0] == pytest.approx(accuracy(t.params, 0, 1))
        assert t.constraints[CONSTRAINT] == pytest.approx(base - t.values[0] - 0.05)
    assert told[0] == {0: ("COMPLETE", [pytest.approx(base), 200.0])}  # told at once
    top = [g for g in genomes if searcher.halving_state.at_rung(HALVING, g, 1)]
    assert len(top) >= 2  # the top-rung means stay in the halving state (and the records)


def test_a_screening_that_ends_before_the_baseline_is_held_until_the_baseline_is_told():
    searcher = make()
    baseline, other = searcher.suggest("0"), searcher.suggest("1")
    assert other[WORK] == [[0, 0, 1]]  # screened beside the baseline
    searcher.on_trial_complete("1", train(other))
    assert [t.state.name for t in searcher.study.trials] == ["RUNNING", "RUNNING"]
    searcher.on_trial_complete("0", train(baseline))
    first, second = searcher.study.trials
    assert (first.state.name, second.state.name) == ("COMPLETE", "COMPLETE")
    worse = accuracy(baseline, 0, 1) - accuracy(other, 0, 1)  # paired at rung 0
    assert second.constraints[CONSTRAINT] == pytest.approx(worse - 0.05)


def test_a_pickled_searcher_decides_the_same():
    _, straight, _ = drive(make(), 12)
    _, resumed, _ = drive(make(), 12, roundtrip=True)
    assert resumed == straight


def test_a_trial_that_reports_nothing_is_run_again_an_error_fails_and_close_prunes():
    searcher = make()
    config = searcher.suggest("0")
    searcher.on_trial_complete("0", {"final": 1})  # stopped before reporting: abandoned
    again = searcher.suggest("1")
    assert again[WORK] == config[WORK]
    searcher.on_trial_complete("1", train(again))
    searcher.suggest("2")
    searcher.on_trial_complete("2", error=True)
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "FAIL"]
    config = searcher.suggest("3")
    searcher.on_trial_complete("3", {"final": 1})  # abandoned: its screening never ended
    searcher._budget = searcher.halving_state.epochs_spent()  # nothing more fits
    assert searcher.suggest("4") == searcher.FINISHED
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "FAIL", "PRUNED"]


def test_the_search_ends_when_the_next_job_no_longer_fits_the_epoch_budget():
    import dataclasses

    searcher = make()
    searcher._budget = 7  # the baseline's 4 epoch-trainings, 2 one-epoch screenings; then
    searcher, trained, configs = drive(searcher, 40)  # a promotion due: 3 more, over 7
    assert len(trained) == 6 and len(configs) == 3
    assert searcher.suggest("last") == searcher.FINISHED
    assert searcher.study.user_attrs["minsearch_halving_finished"] is True
    states = [t.state.name for t in searcher.study.trials if t.state.name != "FAIL"]
    assert states == ["COMPLETE"] * 3  # the two screened genomes were told at rung 0
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
