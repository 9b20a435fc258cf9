"""The language-model task in a search: pair genes that may not overlap their norm or residual,
the loss-increase constraint, and a small search end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from minsearch.objectives.constraint import Constraint
from minsearch.search.results import TrialRecord, results_frame
from minsearch.search.space import SpaceConfig, resolve_genes
from tests.search.conftest import session_processes, write_yaml

ROOT = Path(__file__).resolve().parents[2]
GPT = "minsearch.text.gpt:char_gpt?block_size=16&n_embd=32&n_head=2&n_layer=2"
TEXT_TASK = {
    "name": "tiny_lm", "model": GPT, "dataset": "text", "max_chars": 40_000, "block_size": 16,
    "split": [0.8, 0.1, 0.1], "eval_windows": 48, "epoch_batches": 10, "batch_size": 16,
    "init": "parent", "parent_epochs": 3, "epochs": 1,
    "objectives": ["loss", "loss_p99", "noisy_loss", "param_bytes", "latency_ms"],
    "max_loss_increase": 0.5, "latency_runs": 3, "latency_warmup": 1, "memory_batch": 8,
    "cpus_per_trial": 1, "max_concurrent": 2,
}
TEXT_SPACE = {"sampler": "nsga2", "trials": 4, "seed": 0, "population": 4, "genes": [
    {"kind": "norm", "sites": "h\\.\\d+\\.ln_1", "options": ["keep", "identity", "dyt"]},
    {"kind": "pair", "sites": "h\\.\\d+\\.pair_1", "options": ["keep", "agu"]},
    {"kind": "residual", "sites": "h\\.\\d+\\.residual_0", "options": ["keep", "rezero"]},
]}


@pytest.fixture(scope="module")
def gpt_sites():
    from minsearch.models import build_model
    from minsearch.sites import find_sites

    return find_sites(build_model(GPT), torch.zeros(2, 16, dtype=torch.long))


@pytest.mark.parametrize("genes, message", [
    ([{"kind": "norm", "options": ["identity"]}, {"kind": "pair", "options": ["agu"]}],
     r"Site h\.0\.ln_1 is in two genes \(norm and pair via h\.0\.pair_0\)"),
    ([{"kind": "pair", "options": ["agu"]}, {"kind": "residual", "options": ["rezero"]}],
     r"Site h\.0\.residual_0 is in two genes \(pair via h\.0\.pair_0 and residual\)"),
])
def test_a_pair_and_its_own_norm_or_residual_may_not_be_in_two_genes(gpt_sites, genes, message):
    with pytest.raises(ValueError, match=message):
        resolve_genes(SpaceConfig.from_json({"genes": genes}), gpt_sites)


def test_genes_over_disjoint_halves_of_each_block_resolve(gpt_sites):
    genes = resolve_genes(SpaceConfig.from_json(TEXT_SPACE), gpt_sites)
    assert {g.name: g.sites for g in genes} == {
        "norm": ("h.0.ln_1", "h.1.ln_1"), "pair": ("h.0.pair_1", "h.1.pair_1"),
        "residual": ("h.0.residual_0", "h.1.residual_0")}


def test_shipped_char_gpt_space_fits_the_shipped_task():
    from minsearch.models import build_model
    from minsearch.search.space import load_space
    from minsearch.sites import find_sites
    from minsearch.tasks.config import load_task

    task = load_task(ROOT / "tasks" / "char_gpt.yaml")
    space = load_space(ROOT / "search_spaces" / "char_gpt.yaml")
    sites = find_sites(build_model(task.model),
                       torch.zeros(2, task.data.block_size, dtype=torch.long))
    genes = resolve_genes(space, sites)
    assert {g.kind for g in genes} == {"norm", "residual", "pair", "activation"}
    assert space.trials == 12
    options = {label for g in genes for label in g.labels}
    assert {"identity", "dyt", "rmsnorm", "frozen", "rezero", "drop-branch", "gate",
            "agu"} <= options


def test_the_loss_increase_constraint_decides_feasibility():
    directions = {"loss": "min", "param_bytes": "min"}

    def rec(tid, loss, size, number, baseline=False):
        return TrialRecord(tid, {"norm": "keep" if baseline else "dyt"}, state="COMPLETE",
                           baseline=baseline, number=number,
                           objectives={"loss": loss, "param_bytes": size})

    records = [rec("base", 2.00, 100, 1, baseline=True), rec("close", 2.04, 90, 2),
               rec("far", 2.06, 50, 3), rec("better", 1.90, 100, 4)]
    frame = results_frame(records, ["norm"], directions,
                          Constraint("loss", "min", 0.05)).set_index("trial_id")
    assert frame["feasible"].to_dict() == {"base": True, "close": True, "far": False,
                                           "better": True}
    assert set(frame.index[frame["pareto"]]) == {"close", "better"}


def test_the_searcher_constrains_the_loss_increase(tmp_path):
    from minsearch.search.run_dir import RunDir
    from minsearch.search.searcher import CONSTRAINT, GenomeSearcher
    from minsearch.search.space import Gene

    genes = [Gene("norm", "norm", ("n1",), ("keep", "dyt"), {"keep": "keep", "dyt": "dyt"})]
    space = SpaceConfig.from_json({"sampler": "random", "trials": 3,
                                   "genes": [{"kind": "norm", "options": ["keep"]}]})
    s = GenomeSearcher(genes, space, {"loss": "min", "param_bytes": "min"},
                       Constraint("loss", "min", 0.05), RunDir(tmp_path).storage_url)
    s.suggest("a")
    s.on_trial_complete("a", {"loss": 2.0, "param_bytes": 10.0, "final": 1})
    s.suggest("b")
    s.on_trial_complete("b", {"loss": 2.1, "param_bytes": 5.0, "final": 1})
    base, other = s.study.trials
    assert base.constraints[CONSTRAINT] == pytest.approx(-0.05)  # feasible
    assert other.constraints[CONSTRAINT] == pytest.approx(0.05)  # 0.1 nats up, 0.05 allowed


def test_report_can_go_reads_the_lowest_loss():
    from minsearch.search.report import can_go
    from minsearch.search.results import TrialRecord, results_frame
    from minsearch.search.space import Gene

    def rec(tid, norm, losses, number):
        return TrialRecord(tid, {"norm": norm}, state="COMPLETE", number=number,
                           baseline=number == 1, seeds=[0, 1],
                           objectives={"loss": sum(losses) / 2}, per_seed={"loss": losses})

    records = [rec("base", "keep", [2.0, 2.1], 1), rec("worse", "dyt", [2.2, 2.3], 2),
               rec("close", "dyt", [2.03, 2.13], 3)]  # 0.03 nats up on both seeds
    genes = [Gene("norm", "norm", ("a",), ("keep", "dyt"), {"keep": "keep", "dyt": "dyt"})]
    constraint = Constraint("loss", "min", 0.05)
    frame = results_frame(records, ["norm"], {"loss": "min"}, constraint)
    [row] = can_go(frame, genes, constraint)
    assert row["best_trial"] == "close" and row["mean"] == pytest.approx(2.08)
    assert row["worsening"] == pytest.approx(0.03) and row["verdict"] == "can go"
    unlimited = can_go(frame, genes, Constraint("loss", "min", None))  # no limit: not judged
    assert unlimited[0]["verdict"] == "not judged"
    assert unlimited[0]["worsening"] == pytest.approx(0.03)


# ------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    from tests.search.conftest import Drivers

    tmp = tmp_path_factory.mktemp("lm")
    task = write_yaml(tmp / "task.yaml", TEXT_TASK)
    space = write_yaml(tmp / "space.yaml", TEXT_SPACE)
    run_dir = tmp / "run"
    drivers = Drivers(tmp)
    code, output = drivers.run("search", str(task), "--space", str(space), "--out",
                               str(run_dir), "--quiet", timeout=300)
    left = [pid for sid in drivers.sessions for pid in session_processes(sid)]
    drivers.cleanup()
    return {"code": code, "output": output, "run_dir": run_dir, "left": left}


@pytest.mark.slow
def test_lm_search_ends_with_a_front_on_the_loss(lm_run):
    assert lm_run["code"] == 0, lm_run["output"][-3000:]
    assert "Pareto front" in lm_run["output"] and lm_run["left"] == []
    run_dir = lm_run["run_dir"]
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 4 and (frame["state"] == "COMPLETE").all()
    assert frame[TEXT_TASK["objectives"]].notna().all().all()
    assert (frame["loss_p99"] >= frame["loss"]).all()
    summary = json.loads((run_dir / "front.json").read_text())
    assert list(summary["directions"].items())[0] == ("loss", "min")
    assert summary["front"] and summary["hypervolume"] > 0
    assert summary["reference_point"]["loss"] == pytest.approx(2 * summary["baseline"]["loss"])
    base = float(frame.loc[frame["baseline"], "loss"].iloc[0])
    assert frame["feasible"].tolist() == (frame["loss"] - base <= 0.5 + 1e-12).tolist()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["constraint"] == {"objective": "loss", "direction": "min",
                                    "max_worsening": 0.5, "confidence": 0.9}
    assert "allowed loss increase 0.5" in (run_dir / "report.md").read_text()
    assert json.loads((run_dir / "search.json").read_text())["input_dtype"] == "int64"


@pytest.mark.slow
def test_lm_front_member_reloads_and_reproduces_its_loss(lm_run):
    from minsearch.objectives.loss import example_losses
    from minsearch.search.plan import load_plan
    from minsearch.search.run_dir import RunDir
    from minsearch.tasks.candidate import load_candidate
    from minsearch.tasks.data import load_data

    run_dir = lm_run["run_dir"]
    frame = pd.read_csv(run_dir / "results.csv")
    row = frame[frame["pareto"]].iloc[-1]
    model = load_candidate(run_dir / "front" / f"{row['trial_id']}.pt")
    data = load_data(load_plan(RunDir.open(run_dir)).task.data)
    loss = float(example_losses(model, data, data.test, device="cpu").mean())
    assert loss == pytest.approx(row["loss"], rel=1e-5)
