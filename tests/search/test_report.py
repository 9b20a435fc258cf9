"""The prunable-components report, from objects: the constraint decides "within", for an
accuracy or a loss, and without a limit nothing is judged."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.report import build_report, can_go, render_markdown
from minsearch.search.space import Gene

GENES = [Gene("norm", "norm", ("a", "b"), ("keep", "identity", "dyt"),
              {"keep": "keep", "identity": "identity", "dyt": "dyt"})]
DIRS = {"accuracy": "max", "param_bytes": "min"}
FRAME = pd.DataFrame({"state": ["COMPLETE", "COMPLETE", "COMPLETE", "FAILED"],
                      "baseline": [True, False, False, False],
                      "gene:norm": ["keep", "dyt", "dyt", "identity"],
                      "accuracy": [0.90, 0.85, 0.89, math.nan],
                      "param_bytes": [100.0, 90.0, 90.0, math.nan]})


def test_can_go_judges_the_best_value_against_the_limit():
    rows = {r["option"]: r for r in can_go(FRAME, GENES, Constraint("accuracy", "max", 0.02))}
    assert rows["dyt"]["best"] == 0.89 and rows["dyt"]["worsening"] == pytest.approx(0.01)
    assert rows["dyt"]["within"] is True and rows["dyt"]["trials"] == 2
    assert rows["identity"]["trials"] == 0 and rows["identity"]["within"] is None
    strict = can_go(FRAME, GENES, Constraint("accuracy", "max", 0.005))
    assert [r["within"] for r in strict] == [None, False]


def test_a_report_with_a_limit_states_it():
    report = build_report(FRAME, GENES, DIRS, Constraint("accuracy", "max", 0.02), None)
    assert report["constraint"] == {"objective": "accuracy", "direction": "max",
                                    "max_worsening": 0.02}
    assert report["trials"] == {"complete": 3, "total": 4}
    assert report["baseline"] == {"accuracy": 0.90, "param_bytes": 100.0}
    markdown = render_markdown(report)
    assert "allowed accuracy drop 0.02" in markdown
    assert "| norm | 2 | dyt | 2 | 0.8900 | +0.0100 | yes |" in markdown
    assert "| norm | 2 | identity | 0 | nan | +nan | - |" in markdown


def test_without_a_limit_the_worsening_is_reported_and_nothing_is_judged():
    loss_frame = FRAME.rename(columns={"accuracy": "loss"}).assign(loss=[2.0, 2.3, 2.1, None])
    report = build_report(loss_frame, GENES, {"loss": "min", "param_bytes": "min"},
                          Constraint("loss", "min", None), None)
    row = next(r for r in report["can_go"] if r["option"] == "dyt")
    assert row["best"] == 2.1 and row["worsening"] == pytest.approx(0.1)
    assert row["within"] is None
    markdown = render_markdown(report)
    assert "no limit on the loss increase is set" in markdown and "not judged" in markdown
    assert "| norm | 2 | dyt | 2 | 2.1000 | +0.1000 | not judged |" in markdown
    assert "0.01" not in markdown  # no made-up accuracy fraction
