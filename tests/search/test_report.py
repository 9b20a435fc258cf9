"""The prunable-components report, from objects: per option the candidate with the best mean,
its paired interval, and "can go" / "cannot go" / "not enough evidence"; without a limit
nothing is judged; with one seed there is no evidence either way."""

from __future__ import annotations

import math

import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.report import build_report, can_go, render_markdown
from minsearch.search.results import TrialRecord, results_frame
from minsearch.search.space import Gene

GENES = [Gene("norm", "norm", ("a", "b"), ("keep", "identity", "dyt", "rmsnorm", "affine"),
              {o: o for o in ("keep", "identity", "dyt", "rmsnorm", "affine")})]
DIRS = {"accuracy": "max", "param_bytes": "min"}
SEEDS = [0, 1, 2]


def rec(tid: str, option: str, accuracy: list[float], number: int, size: float = 90.0,
        state: str = "COMPLETE") -> TrialRecord:
    done = state == "COMPLETE"
    return TrialRecord(tid, {"norm": option}, state=state, number=number,
                       baseline=option == "keep" and number == 1,
                       objectives={"accuracy": sum(accuracy) / len(accuracy),
                                   "param_bytes": size} if done else {},
                       seeds=SEEDS[:len(accuracy)] if done else [],
                       per_seed={"accuracy": accuracy} if done else {},
                       held_out=359 if done else 0)


RECORDS = [
    rec("base", "keep", [0.90, 0.93, 0.91], 1, size=100.0),
    rec("dyt-a", "dyt", [0.895, 0.925, 0.905], 2),  # 0.5 points down on every seed
    rec("dyt-b", "dyt", [0.80, 0.85, 0.82], 3),  # worse: not the one the report picks
    rec("id-a", "identity", [0.60, 0.62, 0.58], 4),  # 31 points down on every seed
    rec("id-b", "identity", [0.70, 0.71, 0.69], 5),
    rec("rms", "rmsnorm", [0.85, 0.94, 0.92], 6),  # +5, -1, -1 points: cannot tell
    rec("affine", "affine", [], 7, state="FAILED"),
]


def frame_of(records, limit: float | None):
    return results_frame(records, ["norm"], DIRS, Constraint("accuracy", "max", limit))


def test_can_go_judges_the_best_mean_on_its_paired_interval():
    rows = {r["option"]: r for r in can_go(frame_of(RECORDS, 0.02), GENES,
                                           Constraint("accuracy", "max", 0.02))}
    dyt = rows["dyt"]
    assert dyt["best_trial"] == "dyt-a" and dyt["trials"] == 2
    assert dyt["worsening"] == pytest.approx(0.005) and dyt["lo"] == pytest.approx(0.005)
    assert dyt["verdict"] == "can go"
    assert (dyt["seeds"], dyt["held_out"]) == (3, 359)
    assert rows["identity"]["verdict"] == "cannot go"  # both candidates wholly beyond
    assert rows["identity"]["best_trial"] == "id-b"
    rms = rows["rmsnorm"]
    assert rms["lo"] < 0.02 < rms["hi"] and rms["verdict"] == "not enough evidence"
    assert rows["affine"]["trials"] == 0 and rows["affine"]["verdict"] == "-"


def test_a_best_of_n_single_draw_does_not_decide():
    """The old rule took the best single value: dyt-b's best seed (0.85) is far below, but a
    lucky seed of a noisy option used to pass; now the mean and its interval decide."""
    lucky = [RECORDS[0], rec("lucky", "rmsnorm", [0.70, 0.95, 0.75], 2)]
    row = next(r for r in can_go(frame_of(lucky, 0.02), GENES,
                                 Constraint("accuracy", "max", 0.02)) if r["option"] == "rmsnorm")
    assert row["mean"] == pytest.approx(0.80) and row["verdict"] != "can go"


def test_one_seed_is_never_enough_evidence():
    single = [rec("base", "keep", [0.90], 1, size=100.0), rec("dyt", "dyt", [0.899], 2),
              rec("id", "identity", [0.10], 3)]
    rows = can_go(frame_of(single, 0.02), GENES, Constraint("accuracy", "max", 0.02))
    judged = {r["option"]: r for r in rows if r["trials"]}
    assert {r["verdict"] for r in judged.values()} == {"not enough evidence"}
    assert math.isnan(judged["dyt"]["lo"]) and judged["dyt"]["worsening"] == pytest.approx(0.001)
    markdown = render_markdown(build_report(frame_of(single, 0.02), GENES, DIRS,
                                            Constraint("accuracy", "max", 0.02), None))
    assert "- (one seed)" in markdown


def test_a_report_with_a_limit_states_it_and_what_each_row_rests_on():
    constraint = Constraint("accuracy", "max", 0.02)
    report = build_report(frame_of(RECORDS, 0.02), GENES, DIRS, constraint, None)
    assert report["constraint"] == {"objective": "accuracy", "direction": "max",
                                    "max_worsening": 0.02, "confidence": 0.9}
    assert report["trials"] == {"complete": 6, "total": 7}
    assert report["baseline"]["accuracy"] == pytest.approx((0.90 + 0.93 + 0.91) / 3)
    markdown = render_markdown(report)
    assert "allowed accuracy drop 0.02, judged on paired 90% intervals over seeds" in markdown
    assert "| norm | 2 | dyt | 2 | dyt-a | 0.9083 | +0.0050 | [+0.0050, +0.0050] | 3 | 359 | " \
           "can go |" in markdown
    assert "| norm | 2 | affine | 0 | - | nan | +nan | - | 0 | 0 | - |" in markdown


def test_without_a_limit_the_worsening_is_reported_and_nothing_is_judged():
    constraint = Constraint("accuracy", "max", None)
    report = build_report(frame_of(RECORDS, None), GENES, DIRS, constraint, None)
    row = next(r for r in report["can_go"] if r["option"] == "dyt")
    assert row["worsening"] == pytest.approx(0.005) and row["verdict"] == "not judged"
    markdown = render_markdown(report)
    assert "no limit on the accuracy drop is set" in markdown and "not judged" in markdown


def test_the_importance_section_says_when_it_rests_on_a_multifidelity_screening_rung():
    import optuna

    from minsearch.search.multifidelity import importance_note
    from minsearch.search.promotion import HalvingConfig, Rung

    constraint = Constraint("accuracy", "max", 0.02)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for value in (0.9, 0.8):  # two genomes told their screening values
        study.add_trial(optuna.trial.create_trial(values=[value, 1.0], params={},
                                                  distributions={}))
    config = HalvingConfig((Rung(1, 1, 0.2), Rung(8, 3)), ("max", "min"), constraint, 3.0,
                           (0, 1, 2))
    note = importance_note(config, study)
    assert note == ("These rest on the screening rung: Optuna was told 2 genomes' values after "
                    "1 epoch(s) x 1 seed(s), not the full-budget means above.")
    assert importance_note(None, study) is None  # the default strategy: final values
    frame = frame_of(RECORDS, 0.02)
    with_note = render_markdown(build_report(frame, GENES, DIRS, constraint, None, None, note))
    assert f"## Importance (Optuna evaluators, per objective)\n\n{note}\n" in with_note
    assert "screening rung" not in render_markdown(build_report(frame, GENES, DIRS,
                                                                constraint, None))
