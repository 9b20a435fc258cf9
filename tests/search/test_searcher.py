"""The searcher without Ray running: baseline first, trials that end before it held until it
is told, constraints, PRUNED/FAIL, duplicates redrawn with the space's seed, the grid, samplers
by name with parameters from the space, state that survives save/restore."""

from __future__ import annotations

import inspect

import optuna
import pytest

from minsearch.errors import UserError
from minsearch.objectives.constraint import Constraint
from minsearch.search.run_dir import RunDir
from minsearch.search.samplers import (
    SAMPLERS,
    GenomeGridSampler,
    make_sampler,
    settable_parameters,
)
from minsearch.search.searcher import (
    CONSTRAINT,
    DUPLICATE,
    INTERRUPTED,
    RESUMES,
    TRIAL_ID,
    GenomeSearcher,
)
from minsearch.search.space import Gene, SpaceConfig

GENES = [Gene("norm", "norm", ("n1", "n2"), ("keep", "identity", "dyt"),
              {"keep": "keep", "identity": "identity", "dyt": "dyt"}),
         Gene("residual", "residual", ("r1",), ("keep", "rezero"),
              {"keep": "keep", "rezero": "rezero"})]
DIRECTIONS = {"accuracy": "max", "param_bytes": "min"}


def space(sampler="random", seed=0, trials=6) -> SpaceConfig:
    return SpaceConfig.from_json({"sampler": sampler, "trials": trials, "seed": seed,
                                  "genes": [{"kind": "norm", "options": ["keep"]}]})


def searcher(tmp_path, sampler="random", drop=0.05, seed=0) -> GenomeSearcher:
    """A searcher with its study in ``tmp_path`` (in memory when ``tmp_path`` is None)."""
    storage = None if tmp_path is None else RunDir(tmp_path).storage_url
    return GenomeSearcher(GENES, space(sampler, seed), DIRECTIONS,
                          Constraint("accuracy", "max", drop), storage)


def result(acc, size=10.0):
    return {"accuracy": acc, "param_bytes": size, "final": 1}


def states(s: GenomeSearcher) -> list[str]:
    return [t.state.name for t in s.study.trials]


def run_all(s: GenomeSearcher, n: int) -> list[tuple]:
    """Suggest and complete ``n`` trials one at a time; the genomes that ran."""
    ran = []
    for i in range(n):
        ran.append(tuple(sorted(s.suggest(str(i)).items())))
        s.on_trial_complete(str(i), result(0.9 - i / 100, 10.0 - i))
    return ran


def test_baseline_comes_first_and_others_start_beside_it():
    s = searcher(None)
    assert s.suggest("a") == {"norm": "keep", "residual": "keep"}
    assert s.suggest("b") is not None and s.suggest("c") is not None  # workers start together
    assert s.baseline_trial_id == "a"


def test_a_trial_ending_before_the_baseline_is_told_after_it_with_its_constraint():
    s = searcher(None, drop=0.05)
    s.suggest("a")
    s.suggest("b")
    s.suggest("c")
    s.on_trial_complete("b", result(0.80, 5.0))  # before the baseline: held
    s.on_trial_complete("c", error=True)
    assert states(s) == ["RUNNING", "RUNNING", "RUNNING"]
    s.on_trial_complete("a", result(0.90))
    assert states(s) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert s.study.trials[1].values == [0.80, 5.0]
    assert s.study.trials[1].constraints[CONSTRAINT] == pytest.approx(0.05)  # 0.10 > 0.05
    s.on_trial_complete("b", result(0.80, 5.0))  # re-reported (an older snapshot): once
    assert len(s.study.trials) == 3


def test_complete_trials_carry_values_and_the_accuracy_drop_constraint():
    s = searcher(None)
    s.suggest("a")
    s.on_trial_complete("a", result(0.90, 100))
    s.suggest("b")
    s.on_trial_complete("b", result(0.80, 50))
    base, other = s.study.trials
    assert base.values == [0.90, 100] and other.values == [0.80, 50]
    assert base.constraints[CONSTRAINT] == pytest.approx(-0.05)  # feasible
    assert other.constraints[CONSTRAINT] == pytest.approx(0.05)  # 0.10 drop > 0.05 allowed


def test_without_a_limit_no_constraint_is_stored():
    s = searcher(None, drop=None)
    run_all(s, 2)
    assert [t.constraints for t in s.study.trials] == [{}, {}]


def test_early_stopped_trials_are_pruned_and_errors_fail():
    s = searcher(None)
    s.suggest("a")
    s.on_trial_complete("a", result(0.9))
    s.suggest("b")
    s.on_trial_complete("b", {"epoch": 1, "val_accuracy": 0.99})  # no objectives
    s.suggest("c")
    s.on_trial_complete("c", error=True)
    assert states(s) == ["COMPLETE", "PRUNED", "FAIL"]
    assert s.study.trials[1].values is None  # early values never reach Optuna


def test_a_trial_is_told_once():
    s = searcher(None)
    s.suggest("a")
    s.on_trial_complete("a", result(0.9))
    s.on_trial_complete("a", result(0.1))
    assert states(s) == ["COMPLETE"] and s.study.trials[0].values[0] == 0.9


def test_a_trial_a_stop_ended_is_told_again_as_a_new_trial(tmp_path):
    s = searcher(tmp_path, drop=0.05)
    s.suggest("a")
    s.on_trial_complete("a", result(0.90))
    params = s.suggest("b")
    b = s.study.trials[-1]
    assert b.user_attrs[TRIAL_ID] == "b"
    # A stopped driver lists "b" as interrupted and ends it FAIL (finish.reconcile_study).
    s.study.set_user_attr(INTERRUPTED, {str(b.number): "b"})
    s.study.tell(b.number, state=optuna.trial.TrialState.FAIL)
    s.on_trial_complete("b", result(0.80, 5.0))  # the resumed search finishes "b"
    assert states(s) == ["COMPLETE", "FAIL", "COMPLETE"]
    again = s.study.trials[-1]
    assert again.params == params and again.values == [0.80, 5.0]
    assert again.user_attrs == {TRIAL_ID: "b", RESUMES: b.number}
    assert again.constraints[CONSTRAINT] == pytest.approx(0.05)  # 0.10 drop > 0.05 allowed
    s.on_trial_complete("b", result(0.80, 5.0))  # told once
    assert len(s.study.trials) == 3


def test_a_held_trial_a_stop_ended_is_told_as_a_new_trial_after_the_baseline(tmp_path):
    s = searcher(tmp_path, drop=0.05)
    s.suggest("a")
    params = s.suggest("b")
    s.on_trial_complete("b", result(0.80, 5.0))  # held: the baseline "a" still trains
    b = s.study.trials[-1]
    # Ctrl-C now: the stopped driver lists "b" as interrupted and ends it FAIL
    # (finish.reconcile_study), though Ray has it finished; the resumed search ends "a".
    s.study.set_user_attr(INTERRUPTED, {str(b.number): "b"})
    s.study.tell(b.number, state=optuna.trial.TrialState.FAIL)
    s.on_trial_complete("a", result(0.90))
    assert states(s) == ["COMPLETE", "FAIL", "COMPLETE"]
    again = s.study.trials[-1]
    assert again.params == params and again.values == [0.80, 5.0]
    assert again.user_attrs == {TRIAL_ID: "b", RESUMES: b.number}


def test_repeated_genomes_are_replaced_until_the_space_is_exhausted():
    s = searcher(None)  # 3 x 2 = 6 genomes
    proposals = run_all(s, 6)
    assert len(set(proposals)) == 6  # every genome once, whatever the sampler repeats
    skipped = [t for t in s.study.trials if t.user_attrs.get(DUPLICATE)]
    assert all(t.state.name == "FAIL" for t in skipped)
    assert len(s.study.trials) == 6 + len(skipped)  # at most one skipped trial per repeat
    ran = [tuple(sorted(t.params.items())) for t in s.study.trials
           if not t.user_attrs.get(DUPLICATE)]
    assert ran == proposals  # Optuna records exactly what ran
    assert s.suggest("6") is not None  # exhausted: repeats are allowed now


class FirstChoice(optuna.samplers.BaseSampler):
    """Always the first option of every gene: after the baseline, every proposal repeats."""

    def __init__(self, seed: int | None = None) -> None:
        pass

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        return distribution.choices[0]


def replacements(seed: int) -> list[tuple]:
    s = searcher(None, sampler="first", seed=seed)
    ran = run_all(s, 6)
    assert len(set(ran)) == 6 and ran[0] == (("norm", "keep"), ("residual", "keep"))
    assert sum(bool(t.user_attrs.get(DUPLICATE)) for t in s.study.trials) == 5
    return ran[1:]


def test_replacements_are_seeded_by_the_space_seed(monkeypatch):
    monkeypatch.setitem(SAMPLERS, "first", FirstChoice)
    same, again, other = replacements(0), replacements(0), replacements(1)
    assert same == again  # same seed, same replacements
    assert other != same  # the seed is not lost


def test_state_survives_save_and_restore(tmp_path):
    s = searcher(tmp_path)
    s.suggest("a")
    s.save(str(tmp_path / "state.pkl"))
    (tmp_path / "other").mkdir()
    restored = searcher(tmp_path / "other")  # as Ray does: a fresh searcher, then restore
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.suggest("b") is not None
    restored.on_trial_complete("b", result(0.8))
    assert states(restored) == ["RUNNING", "RUNNING"]  # "b" held: the baseline is "a"
    restored.on_trial_complete("a", result(0.9))
    assert states(restored) == ["COMPLETE", "COMPLETE"]
    assert restored.study.study_name == "minsearch"
    assert len(RunDir(tmp_path).load_study().trials) == 2  # the original study, in SQLite


# ------------------------------------------------------------------------------ samplers

@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_is_built_from_its_name(name):
    assert type(make_sampler(space(name), GENES)) is SAMPLERS[name]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_settable_parameters_are_the_constructors_scalar_ones(name):
    settable = settable_parameters(name)
    signature = inspect.signature(SAMPLERS[name].__init__).parameters
    assert set(settable) <= set(signature)
    assert not {"seed", "search_space", "constraints_func"} & set(settable)


def test_sampler_parameters_come_from_the_space_file(monkeypatch):
    made = {}

    class Recording(optuna.samplers.RandomSampler):
        def __init__(self, seed: int | None = None, n_startup_trials: int = 10,
                     multivariate: bool = False) -> None:
            made.update(seed=seed, n_startup_trials=n_startup_trials, multivariate=multivariate)
            super().__init__(seed)

    monkeypatch.setitem(SAMPLERS, "recording", Recording)
    sp = SpaceConfig.from_json({"sampler": {"name": "recording", "n_startup_trials": 4},
                                "seed": 7, "genes": [{"kind": "norm", "options": ["keep"]}]})
    assert sp.sampler == "recording" and sp.sampler_params == {"n_startup_trials": 4}
    assert SpaceConfig.from_json(sp.to_json()) == sp
    make_sampler(sp, GENES)
    assert made == {"seed": 7, "n_startup_trials": 4, "multivariate": False}


def test_shipped_samplers_take_their_parameters():
    sp = SpaceConfig.from_json({"sampler": {"name": "tpe", "n_startup_trials": 4,
                                            "constant_liar": False},
                                "genes": [{"kind": "norm", "options": ["keep"]}]})
    assert isinstance(make_sampler(sp, GENES), optuna.samplers.TPESampler)
    assert "population_size" in settable_parameters("nsga2")


def test_an_unknown_sampler_parameter_lists_the_accepted_ones():
    with pytest.raises(UserError, match=r"Sampler 'tpe' takes no parameter\(s\) n_startup "
                                        r"from the space file; it accepts: .*n_startup_trials"):
        SpaceConfig.from_json({"sampler": {"name": "tpe", "n_startup": 4},
                               "genes": [{"kind": "norm", "options": ["keep"]}]})
    with pytest.raises(UserError, match=r"takes no parameter\(s\) seed"):
        SpaceConfig.from_json({"sampler": {"name": "random", "seed": 1},
                               "genes": [{"kind": "norm", "options": ["keep"]}]})


def test_a_value_the_sampler_refuses_is_a_user_error():
    sp = SpaceConfig.from_json({"sampler": {"name": "nsga2", "population_size": 1},
                                "genes": [{"kind": "norm", "options": ["keep"]}]})
    with pytest.raises(UserError, match="Sampler 'nsga2' refuses its parameters"):
        make_sampler(sp, GENES)


# ------------------------------------------------------------------------------ the grid

def test_grid_runs_every_point_once_with_the_baseline_among_them(recwarn):
    s = searcher(None, sampler="grid")
    assert isinstance(s.study.sampler, GenomeGridSampler)
    ran = run_all(s, 6)
    assert ran[0] == (("norm", "keep"), ("residual", "keep"))  # the baseline, counted
    assert len(set(ran)) == 6  # 3 x 2 genomes, each once
    assert states(s) == ["COMPLETE"] * 6  # no duplicate was proposed
    assert s.suggest("x") is not None  # exhausted: a repeat, no error
    s.on_trial_complete("x", result(0.5))
    assert not [w for w in recwarn if "GridSampler" in str(w.message)]


def test_grid_order_follows_the_seed():
    orders = [run_all(searcher(None, sampler="grid", seed=seed), 6) for seed in (0, 0, 1)]
    assert orders[0] == orders[1] and orders[0] != orders[2]
