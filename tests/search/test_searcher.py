"""The searcher without Ray running: baseline first and alone, constraints, PRUNED/FAIL,
duplicates redrawn, state that survives save/restore."""

from __future__ import annotations

import optuna
import pytest

from minsearch.search.searcher import CONSTRAINT, DUPLICATE, MinsearchSearch, make_sampler
from minsearch.search.space import Gene, SpaceConfig

GENES = [Gene("norm", "norm", ("n1", "n2"), ("keep", "identity", "dyt"),
              {"keep": "keep", "identity": "identity", "dyt": "dyt"}),
         Gene("residual", "residual", ("r1",), ("keep", "rezero"),
              {"keep": "keep", "rezero": "rezero"})]
METRICS, MODES = ["accuracy", "param_bytes"], ["max", "min"]


def searcher(tmp_path, sampler="random", drop=0.05, genes=GENES) -> MinsearchSearch:
    space = SpaceConfig.from_json({"sampler": sampler, "trials": 6, "genes": [
        {"kind": "norm", "options": ["keep"]}]})
    return MinsearchSearch(genes, space, METRICS, MODES, tmp_path, drop)


def result(acc, size=10.0):
    return {"accuracy": acc, "param_bytes": size, "final": 1}


def states(s: MinsearchSearch) -> list[str]:
    return [t.state.name for t in s.study.trials]


def test_baseline_runs_first_and_alone(tmp_path):
    s = searcher(tmp_path)
    assert s.suggest("a") == {"norm": "keep", "residual": "keep"}
    assert s.suggest("b") is None and s.suggest("c") is None  # wait for the baseline
    s.on_trial_complete("a", result(0.9))
    assert s.suggest("b") is not None
    assert s.baseline_trial_id == "a"


def test_complete_trials_carry_values_and_the_accuracy_drop_constraint(tmp_path):
    s = searcher(tmp_path)
    s.suggest("a")
    s.on_trial_complete("a", result(0.90, 100))
    s.suggest("b")
    s.on_trial_complete("b", result(0.80, 50))
    base, other = s.study.trials
    assert base.values == [0.90, 100] and other.values == [0.80, 50]
    assert base.constraints[CONSTRAINT] == pytest.approx(-0.05)  # feasible
    assert other.constraints[CONSTRAINT] == pytest.approx(0.05)  # 0.10 drop > 0.05 allowed


def test_early_stopped_trials_are_pruned_and_errors_fail(tmp_path):
    s = searcher(tmp_path)
    s.suggest("a")
    s.on_trial_complete("a", result(0.9))
    s.suggest("b")
    s.on_trial_complete("b", {"epoch": 1, "val_accuracy": 0.99})  # no objectives
    s.suggest("c")
    s.on_trial_complete("c", error=True)
    assert states(s) == ["COMPLETE", "PRUNED", "FAIL"]
    assert s.study.trials[1].values is None  # early values never reach Optuna


def test_a_trial_is_told_once(tmp_path):
    s = searcher(tmp_path)
    s.suggest("a")
    s.on_trial_complete("a", result(0.9))
    s.on_trial_complete("a", result(0.1))
    assert states(s) == ["COMPLETE"] and s.study.trials[0].values[0] == 0.9


def test_repeated_genomes_are_replaced_until_the_space_is_exhausted(tmp_path):
    s = searcher(tmp_path)  # 3 x 2 = 6 genomes
    proposals = []
    for i in range(6):
        proposals.append(tuple(sorted(s.suggest(str(i)).items())))
        s.on_trial_complete(str(i), result(0.9))
    assert len(set(proposals)) == 6  # every genome once, whatever the sampler repeats
    skipped = [t for t in s.study.trials if t.user_attrs.get(DUPLICATE)]
    assert all(t.state.name == "FAIL" for t in skipped)
    assert len(s.study.trials) == 6 + len(skipped)  # at most one skipped trial per repeat
    ran = [tuple(sorted(t.params.items())) for t in s.study.trials
           if not t.user_attrs.get(DUPLICATE)]
    assert ran == proposals  # Optuna records exactly what ran
    assert s.suggest("6") is not None  # exhausted: repeats are allowed now


def test_state_survives_save_and_restore(tmp_path):
    s = searcher(tmp_path)
    s.suggest("a")
    s.save(str(tmp_path / "state.pkl"))
    (tmp_path / "other").mkdir()
    restored = searcher(tmp_path / "other")  # as Ray does: a fresh searcher, then restore
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.suggest("b") is None  # still waiting for the baseline "a"
    restored.on_trial_complete("a", result(0.9))
    assert restored.suggest("b") is not None
    assert restored.study.study_name == "minsearch"


@pytest.mark.parametrize("name, cls", [("nsga2", optuna.samplers.NSGAIISampler),
                                       ("tpe", optuna.samplers.TPESampler),
                                       ("gp", optuna.samplers.GPSampler),
                                       ("random", optuna.samplers.RandomSampler),
                                       ("grid", optuna.samplers.GridSampler)])
def test_every_sampler_is_available(name, cls):
    space = SpaceConfig.from_json({"sampler": name, "genes": [{"kind": "norm",
                                                               "options": ["keep"]}]})
    assert isinstance(make_sampler(space, GENES), cls)


def test_grid_sampler_walks_the_whole_space(tmp_path):
    s = searcher(tmp_path, sampler="grid")
    seen = []
    for i in range(6):
        params = s.suggest(str(i))
        seen.append(tuple(sorted(params.items())))
        s.on_trial_complete(str(i), result(0.9 - i / 100))
    assert len(set(seen)) == 6  # 3 x 2 genomes, each once
