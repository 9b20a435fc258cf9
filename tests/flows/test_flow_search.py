"""``minsearch search`` end to end on a 2-D density task: the invertibility gene is searched,
every trial reports the flow objectives, and a candidate above ``max_inversion_error`` fails
with the value in its reason (so it never reaches the front)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tests.search.conftest import Drivers, write_yaml

pytestmark = pytest.mark.slow

TASK = {
    "name": "moons_tiny",
    "model": "minsearch.flows.zoo:mlp_flow?dims=2&steps=2&hidden=16",
    "dataset": "density:moons",
    "max_samples": 600,
    "init": "scratch",
    "epochs": 3,
    "batch_size": 64,
    "weight_decay": 0.0,
    "objectives": ["bits_per_dim", "flow_train_step_ms", "sample_ms", "inversion_error"],
    "max_inversion_error": 0.001,
    "latency_batch": 64,
    "latency_runs": 3,
    "latency_warmup": 1,
    "cpus_per_trial": 1,
    "max_concurrent": 1,
}
SPACE = {"sampler": "grid", "trials": 3, "seed": 0, "genes": [
    {"kind": "invertibility", "tie": "kind",
     "options": ["keep", "residual-sn", {"name": "residual-sn", "iters": 1, "coeff": 0.95}]}]}


@pytest.fixture
def drivers(tmp_path):
    started = Drivers(tmp_path)
    yield started
    started.cleanup()


def test_search_over_the_invertibility_gene(tmp_path, drivers):
    task = write_yaml(tmp_path / "task.yaml", TASK)
    space = write_yaml(tmp_path / "space.yaml", SPACE)
    run = tmp_path / "run"
    # RAY_ADDRESS=local: a fresh local Ray even when a `ray start` cluster runs on this host
    code, output = drivers.run("search", str(task), "--space", str(space), "--out", str(run),
                               "--quiet", "--cpus", "1", env={"RAY_ADDRESS": "local"})
    assert code == 0, output[-3000:]
    assert "Pareto front" in output
    frame = pd.read_csv(run / "results.csv").set_index("gene:invertibility")
    assert sorted(frame.index) == ["keep", "residual-sn", "residual-sn(coeff=0.95,iters=1)"]
    done = frame[frame["state"] == "COMPLETE"]
    assert set(done.index) == {"keep", "residual-sn"}
    for column in TASK["objectives"]:
        assert all(math.isfinite(v) for v in done[column])
    assert done.loc["keep", "inversion_error"] < 1e-5
    assert done.loc["residual-sn", "inversion_error"] < 1e-3
    failed = frame.loc["residual-sn(coeff=0.95,iters=1)"]
    assert failed["state"] == "FAILED" and not failed["pareto"]
    assert "exceeds max_inversion_error 0.001" in failed["reason"]
