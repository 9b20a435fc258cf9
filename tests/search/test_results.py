"""The results table: states, feasibility, the front, hypervolume and its reference point."""

from __future__ import annotations

import math

import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.results import (
    TrialRecord,
    front_summary,
    record_from_result,
    results_frame,
    trial_number,
)
from minsearch.search.run_dir import RunDir

DIRS = {"accuracy": "max", "param_bytes": "min"}
GENES = ["norm"]


def drop(limit: float | None) -> Constraint:
    return Constraint("accuracy", "max", limit)


def rec(tid, acc, size, state="COMPLETE", baseline=False, number=0, norm="dyt"):
    return TrialRecord(tid, {"norm": norm}, state=state, baseline=baseline, number=number,
                       objectives={} if state != "COMPLETE" else {"accuracy": acc,
                                                                  "param_bytes": size})


def test_record_from_result_reads_final_failed_and_early_stopped():
    final = {"accuracy": 0.9, "param_bytes": 10.0, "final": 1, "epoch": 3,
             "corruption/blur@1": 0.7, "genome": "{}"}
    done = record_from_result("a", {}, final, False, list(DIRS))
    assert done.state == "COMPLETE" and done.objectives == {"accuracy": 0.9, "param_bytes": 10.0}
    assert done.extras == {"corruption/blur@1": 0.7}
    failed = record_from_result("b", {}, {"failed": 1, "reason": "Diverged: nan"}, True, [])
    assert failed.state == "FAILED" and failed.reason == "Diverged: nan"
    crashed = record_from_result("c", {}, {}, True, [], error_text="Traceback\n  x\nOSError: boom")
    assert crashed.reason == "OSError: boom"
    stopped = record_from_result("d", {}, {"epoch": 1, "val_accuracy": 0.99}, False, list(DIRS))
    assert stopped.state == "PRUNED" and not stopped.objectives


def test_only_feasible_complete_trials_reach_the_front():
    records = [
        rec("base", 0.90, 100, baseline=True, number=1, norm="keep"),
        rec("small", 0.89, 60, number=2),  # within the drop: on the front
        rec("tiny", 0.50, 10, number=3),  # too inaccurate: infeasible, never on the front
        rec("pruned", math.nan, math.nan, state="PRUNED", number=4),
        rec("failed", math.nan, math.nan, state="FAILED", number=5),
        rec("worse", 0.88, 80, number=6),  # dominated by "small"
    ]
    frame = results_frame(records, GENES, DIRS, drop(0.02))
    assert frame["trial_id"].tolist() == ["base", "small", "tiny", "pruned", "failed", "worse"]
    front = frame.loc[frame["pareto"], "trial_id"].tolist()
    assert front == ["base", "small"]
    assert frame.set_index("trial_id").loc["tiny", "feasible"] == False  # noqa: E712
    assert frame.set_index("trial_id").loc["worse", "rank"] == 1


def test_without_a_constraint_every_complete_trial_is_feasible():
    records = [rec("base", 0.9, 100, baseline=True, norm="keep"), rec("tiny", 0.5, 10)]
    frame = results_frame(records, GENES, DIRS, drop(None))
    assert frame["pareto"].tolist() == [True, True]


def test_front_summary_states_the_reference_point_and_normalises_by_the_baseline():
    records = [rec("base", 0.8, 100, baseline=True, norm="keep"), rec("half", 0.8, 50)]
    frame = results_frame(records, GENES, DIRS, drop(None))
    summary = front_summary(frame, DIRS)
    assert summary["reference_point"] == {"accuracy": 0.0, "param_bytes": 200.0}
    assert summary["normalized_by"] == "baseline"
    # Normalised: baseline (1, 1) and "half" (1, 0.5), reference (0, 2): the baseline alone
    # covers 1 x 1, "half" dominates it and covers 1 x 1.5.
    assert summary["baseline_hypervolume"] == pytest.approx(1.0)
    assert summary["hypervolume"] == pytest.approx(1.5)
    assert summary["front"] == ["half"]


def test_results_round_trip_through_the_run_folder(tmp_path):
    records = [rec("base", 0.9, 100, baseline=True, norm="keep"), rec("x", 0.95, 90)]
    frame = results_frame(records, GENES, DIRS, drop(0.01))
    run = RunDir(tmp_path)
    run.write_results(frame, front_summary(frame, DIRS))
    back = run.read_results()
    assert back["trial_id"].tolist() == ["base", "x"]
    assert run.front_csv.read_text().count("\n") == 2  # header + "x"


def test_trial_number_comes_from_rays_experiment_tag():
    assert trial_number("12_norm=dyt,residual=keep") == 12
    assert trial_number("") == 0


def test_front_is_sorted_best_first_on_the_first_objective_in_its_direction():
    import pandas as pd

    from minsearch.search.results import sort_front

    front = pd.DataFrame({"loss": [2.2, 1.9, 2.0], "accuracy": [0.5, 0.9, 0.7]})
    assert sort_front(front, {"loss": "min", "param_bytes": "min"})["loss"].tolist() == [
        1.9, 2.0, 2.2]
    assert sort_front(front, {"accuracy": "max"})["accuracy"].tolist() == [0.9, 0.7, 0.5]


def seeded(tid, accuracies, size, number, norm="dyt"):
    """A COMPLETE record trained on seeds 0..n-1: accuracy per seed, one exact size."""
    return TrialRecord(tid, {"norm": norm}, state="COMPLETE", number=number,
                       baseline=number == 1, seeds=list(range(len(accuracies))),
                       objectives={"accuracy": sum(accuracies) / len(accuracies),
                                   "param_bytes": size},
                       per_seed={"accuracy": list(accuracies)}, held_out=359)


def test_record_from_result_reads_seeds_per_seed_values_and_a_budget_rejection():
    final = {"accuracy": 0.9, "param_bytes": 10.0, "final": 1, "seeds": "[3, 4]",
             "per_seed": '{"accuracy": [0.89, 0.91]}', "held_out": 359}
    done = record_from_result("a", {}, final, False, list(DIRS))
    assert done.seeds == [3, 4] and done.per_seed == {"accuracy": [0.89, 0.91]}
    assert done.held_out == 359
    rejected = record_from_result("b", {}, {"param_bytes": 900.0, "rejected": 1, "epoch": 0,
                                            "reason": "over budget, not trained: ..."},
                                  False, list(DIRS))
    assert rejected.state == "PRUNED" and rejected.reason.startswith("over budget")


def test_feasibility_is_judged_on_the_paired_interval():
    records = [
        seeded("base", [0.90, 0.94, 0.92], 100, 1, norm="keep"),
        seeded("sure", [0.895, 0.935, 0.915], 60, 2),  # 0.5 points down on every seed
        seeded("bad", [0.50, 0.55, 0.52], 10, 3),  # 40 points down on every seed
        seeded("noisy", [0.86, 0.95, 0.93], 50, 4),  # +4, -1, -1 points: cannot tell
        seeded("noisy-big", [0.85, 0.95, 0.93], 70, 5),  # uncertain, but dominated by "sure"
    ]
    frame = results_frame(records, GENES, DIRS, drop(0.02)).set_index("trial_id")
    assert frame["feasibility"].to_dict() == {"base": "feasible", "sure": "feasible",
                                              "bad": "infeasible", "noisy": "uncertain",
                                              "noisy-big": "uncertain"}
    assert frame.loc["sure", "worsening"] == pytest.approx(0.005)
    assert frame.loc["noisy", "worsening:lo"] < 0.02 < frame.loc["noisy", "worsening:hi"]
    assert frame.loc["base", "worsening:lo"] == frame.loc["base", "worsening:hi"] == 0.0
    # The front is on the feasible means; "noisy" (smaller than the front) is a contender
    # beside it, never on it; "noisy-big" is dominated by a feasible trial: not even that.
    assert frame.index[frame["pareto"]].tolist() == ["base", "sure"]
    assert frame["contender"].to_dict() == {"base": False, "sure": False, "bad": False,
                                            "noisy": True, "noisy-big": False}
    # Intervals of each objective: a t-interval over seeds, an exact cost at both ends.
    assert frame.loc["sure", "accuracy:lo"] < frame.loc["sure", "accuracy"] \
        < frame.loc["sure", "accuracy:hi"]
    assert frame.loc["sure", "param_bytes:lo"] == frame.loc["sure", "param_bytes:hi"] == 60
    assert frame.loc["sure", "n_seeds"] == 3 and frame.loc["sure", "held_out"] == 359


def test_stability_is_the_share_of_seed_resamples_that_keep_a_member_on_the_front():
    """"x" (same size) beats the baseline on seed 0 and loses on seed 1; its mean wins (0.91
    vs 0.90). Resampling two seeds gives 4 equally likely draws; only the one drawing seed 1
    twice puts the baseline ahead: 3 of 4 keep "x" on the front."""
    records = [seeded("base", [0.90, 0.90], 100, 1, norm="keep"),
               seeded("x", [0.95, 0.87], 100, 2), seeded("small", [0.80, 0.80], 10, 3)]
    frame = results_frame(records, GENES, DIRS, drop(None)).set_index("trial_id")
    assert frame.index[frame["pareto"]].tolist() == ["x", "small"]
    assert frame.loc["x", "stability"] == pytest.approx(0.75)
    assert frame.loc["small", "stability"] == pytest.approx(1.0)  # smallest on every draw
    assert math.isnan(frame.loc["base", "stability"])  # not a member


def test_one_seed_keeps_the_point_decision_and_measures_no_stability():
    records = [seeded("base", [0.90], 100, 1, norm="keep"), seeded("small", [0.89], 60, 2),
               seeded("tiny", [0.50], 10, 3)]
    frame = results_frame(records, GENES, DIRS, drop(0.02)).set_index("trial_id")
    assert frame["feasibility"].tolist() == ["feasible", "feasible", "infeasible"]
    assert frame["worsening:lo"].isna().all() and frame["accuracy:lo"].isna().all()
    assert frame["stability"].isna().all()


def test_the_front_figure_draws_uncertain_candidates_with_their_interval(tmp_path):
    from minsearch.search.plot import plot_front

    records = [seeded("base", [0.90, 0.94, 0.92], 100, 1, norm="keep"),
               seeded("noisy", [0.86, 0.95, 0.93], 50, 2)]
    frame = results_frame(records, GENES, DIRS, drop(0.02))
    assert frame["feasibility"].tolist() == ["feasible", "uncertain"]
    path = plot_front(frame, DIRS, drop(0.02), tmp_path / "front.png")
    assert path is not None and path.stat().st_size > 1000


def test_jobs_fold_into_one_record_per_genome_with_the_rung_it_reached():
    from minsearch.objectives.constraint import Constraint
    from minsearch.search.multifidelity import genome_records
    from minsearch.search.promotion import HalvingConfig, Rung
    from minsearch.search.results import TrialRecord

    config = HalvingConfig((Rung(1, 1), Rung(2, 2)), ("max", "min"),
                           Constraint("accuracy", "max", 0.1), seeds=(0, 1))

    def job(trial_id, number, params, values, state="COMPLETE", reason=""):
        return TrialRecord(trial_id, {"norm": params}, state=state, number=number,
                           reason=reason, objectives={"bytes": 10.0}, rung_values={
                               str(s): {str(e): {"accuracy": a, "bytes": 10.0}
                                        for e, a in by_epoch.items()}
                               for s, by_epoch in values.items()})

    records = [job("b1", 1, "keep", {0: {1: 0.8, 2: 0.9}, 1: {1: 0.7, 2: 0.8}}),
               job("s1", 2, "dyt", {0: {1: 0.6}}), job("s2", 3, "identity", {0: {1: 0.5}}),
               job("p1", 4, "dyt", {0: {2: 0.7}, 1: {1: 0.5, 2: 0.6}}),
               job("x1", 5, "rms", {}, "PRUNED", "over budget, not trained: ..."),
               job("p2", 6, "identity", {}, "RUNNING")]
    folded = {r.params["norm"]: r for r in genome_records(records, config)}
    assert [r.number for r in folded.values()] == [1, 2, 3, 4]
    dyt = folded["dyt"]
    assert (dyt.trial_id, dyt.state, dyt.extras) == ("s1", "COMPLETE", {"rung": 1.0, "jobs": 2.0})
    assert dyt.objectives == {"accuracy": pytest.approx(0.65), "bytes": 10.0}
    assert dyt.per_seed == {"accuracy": [0.7, 0.6]} and dyt.seeds == [0, 1] and dyt.epochs == 4
    assert folded["identity"].state == "RUNNING" and folded["identity"].extras["rung"] == 0
    assert folded["rms"].state == "PRUNED" and folded["rms"].reason.startswith("over budget")
    records[-1].state = "COMPLETE"  # the search ended: the promotion never reported
    late = genome_records(records, config)[2]
    assert (late.state, late.reason) == ("PRUNED", "stopped at rung 0 (1 epochs x 1 seeds): "
                                                   "not promoted")
    assert genome_records(records, None) == records  # the default strategy: as they are
