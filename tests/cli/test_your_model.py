"""The journey of docs/your-model.md, through the CLI as a user runs it: a script trains a
timm model on a folder of digit PNGs and saves it (``torch.save(state_dict)`` and
safetensors); ``minsearch validate`` and ``minsearch search --trials 3`` then start from those
weights, streaming the folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.search.conftest import session_processes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "your_model"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def minsearch(cwd: Path, *args: str, timeout: float = 400) -> tuple[int, str, list[int]]:
    """Run ``minsearch ARGS`` in its own session; (exit code, output, processes left)."""
    proc = subprocess.Popen([sys.executable, "-m", "minsearch.cli.main", *args], cwd=cwd,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        left = session_processes(proc.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    return proc.returncode, out, left


def make_model():
    """``docs/examples/your_model/make_model.py`` as a module (the user's training script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_model", EXAMPLE / "make_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    import torch

    tmp = tmp_path_factory.mktemp("journey")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the user's script, in this process (3 epochs: ~0.93 test accuracy)
        accuracy = make_model().make(tmp / "runs" / "your-model", epochs=3)
    finally:
        torch.set_num_threads(threads)
    code, out, left = minsearch(tmp, "search", str(EXAMPLE / "task.yaml"), "--space",
                                str(EXAMPLE / "space.yaml"), "--trials", "3", "--out",
                                "runs/search", "--quiet")
    return {"tmp": tmp, "made": {"test_accuracy": accuracy}, "code": code, "out": out,
            "left": left, "run": tmp / "runs" / "search"}


def test_the_search_starts_from_the_users_weights(journey):
    assert journey["code"] == 0, journey["out"][-3000:]
    assert journey["left"] == []
    parent = json.loads((journey["run"] / "search.json").read_text())["parent"]
    assert parent["epochs"] == 0 and parent["weights"].endswith("model.safetensors")
    # as delivered: the user's own model on the user's own held-out test/ folder
    assert parent["as_delivered"]["test_accuracy"] == pytest.approx(
        journey["made"]["test_accuracy"], abs=1e-9)
    assert journey["made"]["test_accuracy"] > 0.8  # trained: a random init scores ~0.1
    assert f"as delivered: test accuracy {parent['as_delivered']['test_accuracy']:.4f}" in \
        journey["out"]


def test_candidates_inherit_the_weights(journey):
    frame = pd.read_csv(journey["run"] / "results.csv")
    assert len(frame) == 3 and set(frame["state"]) == {"COMPLETE"}
    baseline = frame[frame["baseline"]].iloc[0]
    delivered = journey["made"]["test_accuracy"]
    assert abs(baseline["accuracy"] - delivered) < 0.05  # one epoch at lr 1e-3 on top of it
    report = (journey["run"] / "report.md").read_text()
    assert "Parent: your weights" in report and "as delivered" in report


def test_validate_checks_the_weights_file(journey, monkeypatch, capsys):
    from minsearch.cli.main import main

    tmp = journey["tmp"]
    monkeypatch.chdir(tmp)  # the task's paths are relative to the working directory
    task = yaml.safe_load((EXAMPLE / "task.yaml").read_text())
    space = str(EXAMPLE / "space.yaml")
    good = tmp / "pt.yaml"
    good.write_text(yaml.safe_dump({**task, "weights": "runs/your-model/model.pt"}))
    assert main(["validate", str(good), "--space", space]) == 0
    out = capsys.readouterr().out
    assert "with weights" in out and "model.pt (they fit)" in out
    bad = tmp / "wrong.yaml"
    wrong_model = task["model"].replace("num_classes=10", "num_classes=7")
    bad.write_text(yaml.safe_dump({**task, "model": wrong_model}))
    assert main(["validate", str(bad), "--space", space]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "shape mismatch: fc.weight (file (10, 64), model (7, 64))" in lines[0]
