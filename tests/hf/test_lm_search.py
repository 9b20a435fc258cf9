"""The shipped tiny LLaMA task and space (tasks/tiny_llama.yaml, search_spaces/tiny_llama.yaml):
its genes resolve on transformers' LlamaForCausalLM, and a 6-trial search runs through the CLI
with a smaller budget (less text, fewer steps)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.search.conftest import session_processes, write_yaml

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tasks" / "tiny_llama.yaml"
SPACE = ROOT / "search_spaces" / "tiny_llama.yaml"
SMALLER = {"max_chars": 20_000, "block_size": 16, "eval_windows": 24, "epoch_batches": 5,
           "batch_size": 16, "parent_epochs": 2, "epochs": 1, "latency_runs": 3,
           "latency_warmup": 1, "memory_batch": 8, "max_loss_increase": 0.5,
           "objectives": ["loss", "loss_p99", "noisy_loss", "param_bytes", "latency_ms"]}


def test_shipped_space_fits_the_shipped_task():
    from minsearch.models import build_model
    from minsearch.search.space import load_space, resolve_genes
    from minsearch.sites import find_sites
    from minsearch.tasks.config import load_task

    task, space = load_task(TASK), load_space(SPACE)
    model = build_model(task.model)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model(torch.zeros(2, task.data.block_size, dtype=torch.long)).shape == (2, 64, 128)
    genes = {g.name: g for g in resolve_genes(space, find_sites(model))}
    assert {g.kind for g in genes.values()} == {"norm", "residual", "pair", "attention"}
    assert genes["attention"].sites == ("model.layers.0.self_attn", "model.layers.1.self_attn")
    assert genes["pair"].sites == ("model.layers.0.pair_1", "model.layers.1.pair_1")
    assert {"agu", "qaas", "int8", "dyt", "rezero", "drop-branch"} <= {
        label for g in genes.values() for label in g.labels}


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    from tests.search.conftest import Drivers

    tmp = tmp_path_factory.mktemp("llama")
    task = write_yaml(tmp / "task.yaml", {**yaml.safe_load(TASK.read_text()), **SMALLER})
    space = write_yaml(tmp / "space.yaml", {**yaml.safe_load(SPACE.read_text()), "trials": 6})
    run_dir = tmp / "run"
    drivers = Drivers(tmp)
    code, output = drivers.run("search", str(task), "--space", str(space), "--out",
                               str(run_dir), "--quiet", env={"HF_HUB_OFFLINE": "1"},
                               timeout=400)
    left = _left_after(drivers.sessions, grace=15.0)  # Ray's workers exit after the driver
    drivers.cleanup()
    return {"code": code, "output": output, "run_dir": run_dir, "left": left}


def _left_after(sessions: list[int], grace: float) -> list[tuple[int, bytes]]:
    """Processes of the driver's sessions still alive ``grace`` seconds after it exited."""
    deadline = time.monotonic() + grace
    while True:
        left = [pid for sid in sessions for pid in session_processes(sid)]
        if not left or time.monotonic() > deadline:
            return [(pid, _cmdline(pid)) for pid in left]
        time.sleep(0.5)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:80]
    except OSError:
        return b""


@pytest.mark.slow
def test_six_trial_search_on_the_tiny_llama(llama_run):
    assert llama_run["code"] == 0, llama_run["output"][-3000:]
    assert "Pareto front" in llama_run["output"] and llama_run["left"] == []
    run_dir = llama_run["run_dir"]
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 6 and (frame["state"] == "COMPLETE").all()
    assert frame[SMALLER["objectives"]].notna().all().all()
    assert frame["baseline"].sum() == 1
    genes = [c for c in frame.columns if c.startswith("gene:")]
    assert "gene:attention" in genes and "gene:pair" in genes
    changed = frame.loc[~frame["baseline"], genes]
    assert (changed != "keep").any(axis=1).all()  # every other trial changed something
    summary = json.loads((run_dir / "front.json").read_text())
    assert summary["front"] and list(summary["directions"])[0] == "loss"
