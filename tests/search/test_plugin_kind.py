"""A site kind added from the tests package alone (``tests/plugins/dropout_kind.py``) is
discovered, applied and searched like a built-in one: no core file names it."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from minsearch import apply_, find_sites
from minsearch.plugins import load_plugins
from minsearch.sites import kind_names

PLUGIN = "tests.plugins.dropout_kind"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


@pytest.fixture(scope="module", autouse=True)
def plugin():
    load_plugins([PLUGIN])


def test_plugin_kind_is_registered_and_discovered():
    assert "dropout" in kind_names()
    sites = find_sites(Net(), (2, 8)).of_kind("dropout")
    assert [(s.name, s.options, s.detail.p) for s in sites] == [("drop", ("keep", "identity"),
                                                                  0.5)]


def test_plugin_option_applies_through_the_one_loop():
    torch.manual_seed(0)
    model, x = Net(), torch.randn(3, 8)
    ref = model.eval()(x)
    candidate = copy.deepcopy(model)
    report = apply_(candidate, {"dropout:*": "identity"}, x)
    assert [str(c) for c in report.changes] == ["drop: Dropout -> Identity (identity)"]
    assert isinstance(candidate.drop, nn.Identity)
    torch.testing.assert_close(candidate.train()(x), ref)  # no dropout left, even in training


@pytest.mark.slow
def test_search_over_the_plugin_kind(tmp_path, drivers):
    from tests.search.conftest import TINY_TASK, VIT, write_yaml

    task = write_yaml(tmp_path / "task.yaml", dict(
        TINY_TASK, model=f"{VIT}&drop_rate=0.1", init="scratch", max_samples=200,
        max_concurrent=1, objectives=["accuracy", "param_bytes"]))
    space = write_yaml(tmp_path / "space.yaml", {
        "sampler": "grid", "trials": 2, "seed": 0, "plugins": [PLUGIN],
        "genes": [{"kind": "dropout", "tie": "kind", "options": ["keep", "identity"]}]})
    run_dir = tmp_path / "run"
    code, output = drivers.run("search", str(task), "--space", str(space), "--out",
                               str(run_dir), "--quiet")
    assert code == 0, output[-3000:]
    genes = json.loads((run_dir / "genes.json").read_text())
    assert [g["name"] for g in genes] == ["dropout"] and len(genes[0]["sites"]) > 2
    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    assert sorted(results["gene:dropout"]) == ["identity", "keep"]
    assert (results["state"] == "COMPLETE").all(), results[["state", "reason"]]
    removed = results.loc[results["gene:dropout"] == "identity", "genome"].iloc[0]
    assert {c["type"] for c in json.loads(removed).values()} == {"dropout/identity"}
