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


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("journey")
    subprocess.run([sys.executable, str(EXAMPLE / "make_model.py"), "--out", "runs/your-model",
                    "--epochs", "8"], cwd=tmp, env=ENV, check=True, timeout=300,
                   capture_output=True)
    made = json.loads((tmp / "runs" / "your-model" / "made.json").read_text())
    code, out, left = minsearch(tmp, "search", str(EXAMPLE / "task.yaml"), "--space",
                                str(EXAMPLE / "space.yaml"), "--trials", "3", "--out",
                                "runs/search", "--quiet")
    return {"tmp": tmp, "made": made, "code": code, "out": out, "left": left,
            "run": tmp / "runs" / "search"}


def test_the_search_starts_from_the_users_weights(journey):
    assert journey["code"] == 0, journey["out"][-3000:]
    assert journey["left"] == []
    parent = json.loads((journey["run"] / "search.json").read_text())["parent"]
    assert parent["epochs"] == 0 and parent["weights"].endswith("model.safetensors")
    # as delivered: the user's own model on the user's own held-out test/ folder
    assert parent["as_delivered"]["test_accuracy"] == pytest.approx(
        journey["made"]["test_accuracy"], abs=1e-9)
    assert journey["made"]["test_accuracy"] > 0.8
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


def test_validate_checks_the_weights_file(journey):
    tmp = journey["tmp"]
    task = yaml.safe_load((EXAMPLE / "task.yaml").read_text())
    good = tmp / "pt.yaml"
    good.write_text(yaml.safe_dump({**task, "weights": "runs/your-model/model.pt"}))
    code, out, _ = minsearch(tmp, "validate", str(good), "--space", str(EXAMPLE / "space.yaml"))
    assert code == 0 and "with weights" in out and "ok: the search would start" in out, out
    bad = tmp / "wrong.yaml"
    wrong_model = task["model"].replace("num_classes=10", "num_classes=7")
    bad.write_text(yaml.safe_dump({**task, "model": wrong_model}))
    code, out, _ = minsearch(tmp, "validate", str(bad), "--space", str(EXAMPLE / "space.yaml"))
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1, out
    assert "shape mismatch: fc.weight (file (10, 64), model (7, 64))" in lines[0]
