"""A search over precision genes, through the CLI: every trial completes, the int8 candidate's
``param_bytes`` is the real stored size of its quantized weights, and its export loads back
(quantized again) to exactly the accuracy the search reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest


@pytest.mark.slow
def test_search_over_precision_genes_exports_what_it_measured(tmp_path, drivers):
    import torch

    from minsearch.tasks.candidate import load_candidate
    from minsearch.tasks.config import load_task
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import evaluate
    from tests.search.conftest import TINY_TASK, write_yaml

    task = write_yaml(tmp_path / "task.yaml", dict(
        TINY_TASK, max_samples=300, max_concurrent=1, objectives=["accuracy", "param_bytes"]))
    space = write_yaml(tmp_path / "space.yaml", {
        "sampler": "grid", "trials": 3, "seed": 0,
        "genes": [{"kind": "linear", "tie": "kind", "exclude": "head",
                   "options": ["keep", "int8-weight", {"name": "int8-dynamic",
                                                       "training": "ptq"}]}]})
    run_dir = tmp_path / "run"
    code, output = drivers.run("search", str(task), "--space", str(space), "--out",
                               str(run_dir), "--quiet")
    assert code == 0, output[-3000:]
    results = pd.read_csv(run_dir / "results.csv").set_index("gene:linear")
    assert (results["state"] == "COMPLETE").all(), results[["state", "reason"]]
    assert sorted(results.index) == ["int8-dynamic(training=ptq)", "int8-weight", "keep"]
    genes = json.loads((run_dir / "genes.json").read_text())
    assert "head" not in genes[0]["sites"] and len(genes[0]["sites"]) == 8

    # 8 block linears of the ViT: (32*96 + 32*32 + 32*128 + 128*32) * 2 weights, fp32 -> int8
    # saves 3 of every 4 bytes, minus an fp32 scale and an int8 zero point per output channel
    weights = (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32) * 2
    rows = (96 + 32 + 128 + 32) * 2
    saved = results.loc["keep", "param_bytes"] - results.loc["int8-weight", "param_bytes"]
    assert saved == 3 * weights - 5 * rows
    assert results.loc["int8-dynamic(training=ptq)", "param_bytes"] == (
        results.loc["int8-weight", "param_bytes"])

    trial = str(results.loc["int8-weight", "trial_id"])
    out = tmp_path / "int8.pt"
    code, output = drivers.run("export", str(run_dir), "--trial", trial, "--out", str(out))
    assert code == 0, output[-2000:]
    model = load_candidate(out)
    assert not any(type(m).__name__ == "PrecisionLayer" for m in model.modules())
    data = load_data(load_task(task).data)
    torch.manual_seed(0)
    assert evaluate(model, data, data.test) == results.loc["int8-weight", "accuracy"]
