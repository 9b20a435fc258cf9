"""A trial trains with the task's recipe (schedule, steps, distillation from the parent in its
payload) and, restored from a checkpoint, continues it exactly: no Ray needed, the trainable
talks to a stand-in for ``ray.tune``."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import torch

from minsearch.search import trainable
from minsearch.tasks.config import TaskConfig
from tests.tasks.factories import TinyMLP

TASK = {"model": "tests.tasks.factories:tiny_mlp", "dataset": "digits", "max_samples": 400,
        "init": "parent", "steps": 20, "schedule": "cosine", "warmup": 0.2, "batch_size": 32,
        "distill": {"weight": 0.5, "temperature": 2.0}, "checkpoint_seconds": 0,
        "objectives": ["accuracy", "param_bytes"]}


class FakeTune:
    """What the trainable asks of ``ray.tune``; keeps every report and its checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.reports = folder, []
        self.Checkpoint = SimpleNamespace(from_directory=self._keep)

    def _keep(self, path: str) -> Path:  # the trainable deletes its folder after reporting
        return Path(shutil.copytree(path, self.folder / f"checkpoint-{len(self.reports)}"))

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        self.reports.append((dict(metrics), checkpoint))

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: "trial-0")

    def saved(self, index: int, name: str):
        return torch.load(self.reports[index][1] / name, weights_only=True)


def run(monkeypatch, folder: Path, state: dict | None = None) -> FakeTune:
    fake = FakeTune(folder)
    folder.mkdir()
    monkeypatch.setattr(trainable, "tune", fake)
    monkeypatch.setattr(trainable, "placement", lambda started_at: {})
    torch.manual_seed(5)
    payload = {"task": TaskConfig.from_flat(TASK).to_flat(), "genes": [], "plugins": [],
               "parent_state": TinyMLP().state_dict(), "threads": 1}
    trainable._train_and_measure({}, payload, state)
    return fake


def test_a_restored_trial_continues_its_schedule(monkeypatch, tmp_path):
    whole = run(monkeypatch, tmp_path / "whole")
    curves = [m for m, _ in whole.reports if "final" not in m]
    assert [c["epoch"] for c in curves] == list(range(1, 11))
    assert [c["step"] for c in curves] == list(range(2, 21, 2))  # 20 steps in 10 rounds
    state = whole.saved(3, trainable.STATE)  # after round 4 of 10, of the only seed
    current = state["current"]  # the seed in training (finished seeds are in state["done"])
    assert current["epoch"] == 4 and current["step"] == 8 and state["done"] == {}
    assert current["scheduler"]["last_epoch"] == 8

    resumed = run(monkeypatch, tmp_path / "resumed", state)
    assert [m["epoch"] for m, _ in resumed.reports] == [5, 6, 7, 8, 9, 10, 10]
    final, final_again = whole.reports[-1][0], resumed.reports[-1][0]
    assert final_again["accuracy"] == final["accuracy"]
    weights = whole.saved(-1, trainable.WEIGHTS)
    for key, value in resumed.saved(-1, trainable.WEIGHTS).items():
        torch.testing.assert_close(value, weights[key])

    # The check can fail: without the scheduler's state (a fresh warm-up and cosine from
    # round 5) the trial ends with other weights.
    del current["scheduler"]
    fresh = run(monkeypatch, tmp_path / "fresh-schedule", state)
    assert any(not torch.allclose(v, weights[k])
               for k, v in fresh.saved(-1, trainable.WEIGHTS).items())
