"""Task files: flat YAML, validated sections, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from minsearch.models import build_model
from minsearch.tasks.config import TaskConfig, load_task
from minsearch.tasks.data import load_data
from minsearch.tasks.train import check_outputs

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "tasks").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tasks_load_and_their_models_fit_the_data(path, digits):
    task = load_task(path)
    assert task.name == path.stem
    assert task.measure.objectives[0] == ("loss" if task.data.kind == "text" else "accuracy")
    data = digits if task.data.dataset == "digits" else load_data(task.data)
    check_outputs(build_model(task.model), data)  # e.g. 10 classes, 8x8 single-channel input


def test_shipped_tasks_are_commented():
    for path in SHIPPED:
        assert path.read_text().count("#") >= 5, f"{path.name} should explain its keys"


def test_flat_round_trip():
    task = TaskConfig.from_flat({"model": "timm:resnet18", "lr": 0.01, "epochs": 4,
                                 "objectives": ["accuracy", "flops"], "split": [0.5, 0.25, 0.25]})
    assert TaskConfig.from_flat(task.to_flat()) == task
    assert task.recipe.lr == 0.01 and task.data.split == (0.5, 0.25, 0.25)
    assert task.directions == {"accuracy": "max", "flops": "min"}


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"model": "timm:resnet18", "epoch": 3}))
    with pytest.raises(ValueError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        load_task(path)


@pytest.mark.parametrize("flat, message", [
    ({}, "needs `model:`"),
    ({"model": "resnet18"}, "neither 'timm:NAME'"),
    ({"model": "timm:x", "split": [0.5, 0.5]}, "`split` must be three"),
    ({"model": "timm:x", "split": [0.5, 0.5, 0.0]}, "`split` must be three"),
    ({"model": "timm:x", "dataset": "imagefolder"}, "set `data_root`"),
    ({"model": "timm:x", "dataset": "mnist"}, "`dataset` must be one of"),
    ({"model": "timm:x", "init": "pretrained"}, "`init` must be one of"),
    ({"model": "timm:x", "epochs": 0}, "`epochs` must be an int >= 1"),
    ({"model": "timm:x", "lr": -1}, "`lr` must be > 0"),
    ({"model": "timm:x", "objectives": ["acuracy"]}, "Did you mean 'accuracy'"),
    ({"model": "timm:x", "objectives": ["flops", "accuracy"]}, "must be the first objective"),
    ({"model": "timm:x", "objectives": ["flops"], "max_accuracy_drop": 0.1}, "needs `accuracy`"),
    ({"model": "timm:x", "max_accuracy_drop": 2}, "fraction of accuracy"),
    ({"model": "timm:x", "corruptions": ["fog"]}, "Unknown corruption 'fog'"),
    ({"model": "timm:x", "severities": [4]}, "`severities` must be"),
    ({"model": "timm:x", "gpus_per_trial": -1}, "`gpus_per_trial` must be >= 0"),
    ({"model": "timm:x", "max_concurrent": 0}, "`max_concurrent` must be"),
    ({"model": "timm:x", "checkpoint_seconds": -1}, "`checkpoint_seconds` must be >= 0"),
])
def test_mistakes_state_the_rule_and_value(flat, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig.from_flat(flat)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task(tmp_path / "nope.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(yaml.YAMLError):
        load_task(path)
