"""Task files: flat YAML, validated sections, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from minsearch.errors import UserError
from minsearch.models import build_model
from minsearch.objectives.constraint import directions
from minsearch.tasks.config import RecipeConfig, TaskConfig, load_task
from minsearch.tasks.data import load_data
from minsearch.tasks.train import check_outputs

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "tasks").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tasks_load_and_their_models_fit_the_data(path, digits):
    task = load_task(path)
    assert task.name == path.stem
    first = {"text": "loss", "density": "bits_per_dim"}.get(task.data.kind, "accuracy")
    assert task.measure.objectives[0] == first
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
    assert directions(task.measure.objectives) == {"accuracy": "max", "flops": "min"}


def test_numbers_written_as_yaml_1_1_strings_are_numbers(tmp_path):
    """YAML 1.1 reads `3e-3` (no dot) as a string; a number field takes it as the number."""
    path = tmp_path / "t.yaml"
    path.write_text("model: timm:resnet18\nlr: 3e-3\nweight_decay: 1e-4\nepochs: '3'\n")
    task = load_task(path)
    assert task.recipe.lr == 0.003 and task.recipe.weight_decay == 1e-4
    assert task.recipe.epochs == 3


def test_ints_in_number_fields_stay_ints():
    """`grad_clip: 1` stays 1: the parent cache key hashes the values as they were written."""
    task = TaskConfig.from_flat({"model": "timm:resnet18", "grad_clip": 1, "cpus_per_trial": 2})
    assert type(task.recipe.grad_clip) is int and type(task.resources.cpus_per_trial) is int


def test_replace_is_validated():
    recipe = RecipeConfig()
    assert recipe.replace(lr=0.1).lr == 0.1 and recipe.lr == 3e-3
    with pytest.raises(UserError, match="`lr` must be > 0"):
        recipe.replace(lr=0.0)


@pytest.mark.parametrize("text, message", [
    ("lr: fast", "t.yaml: `lr` must be a number, but got 'fast' (str)."),
    ("cpus_per_trial: one", "t.yaml: `cpus_per_trial` must be a number, but got 'one' (str)."),
    ("epochs: 2.5", "`epochs` must be an integer, but got 2.5 (float)."),
    ("epochs: yes", "`epochs` must be an integer, but got True (bool)."),
    ("objectives: accuracy", "`objectives` must be a list, but got 'accuracy' (str)."),
    ("split: [0.6, a, 0.2]", "`split[1]` must be a number, but got 'a' (str)."),
    ("lr: .nan", "`lr` must be a finite number, but got nan (float)."),
    ("lr: fast\nmax_concurrent: two",
     "`lr` must be a number, but got 'fast' (str); `max_concurrent` must be an integer, but "
     "got 'two' (str)."),
])
def test_wrong_type_names_the_key_the_value_and_the_type(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(f"model: timm:resnet18\n{text}\n")
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(err.value).endswith(message) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"model": "timm:resnet18", "epoch": 3}))
    with pytest.raises(UserError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        load_task(path)
    with pytest.raises(UserError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        RecipeConfig(epoch=3)


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
    ({"model": "timm:x", "objectives": ["flops", "accuracy"]}, "must be the first objective"),
    ({"model": "timm:x", "objectives": ["flops"], "max_accuracy_drop": 0.1}, "needs `accuracy`"),
    ({"model": "timm:x", "max_accuracy_drop": 2}, "fraction of accuracy"),
    ({"model": "timm:x", "severities": [4]}, "`severities` must be"),
    ({"model": "timm:x", "gpus_per_trial": -1}, "`gpus_per_trial` must be >= 0"),
    ({"model": "timm:x", "max_concurrent": 0}, "`max_concurrent` must be"),
    ({"model": "timm:x", "checkpoint_seconds": -1}, "`checkpoint_seconds` must be >= 0"),
    ({"model": "timm:x", "seeds": 0}, r"`seeds` must be a count >= 1 .* got 0"),
    ({"model": "timm:x", "seeds": [1, 1]}, r"distinct seeds, but got \[1, 1\]"),
    ({"model": "timm:x", "seeds": "three"}, r"`seeds` must be a count .* got 'three' \(str\)\.$"),
    ({"model": "timm:x", "confidence": 1.0}, r"`confidence` .* in \[0.5, 1\), but got 1.0"),
    ({"model": "timm:x", "max_flops": 0}, "`max_flops` is a budget"),
])
def test_mistakes_state_the_rule_and_value(flat, message):
    with pytest.raises(UserError, match=message):
        TaskConfig.from_flat(flat)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(UserError, match=r"Task file '.*nope.yaml' does not exist"):
        load_task(tmp_path / "nope.yaml")


def test_invalid_yaml_points_at_line_and_column(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model: timm:resnet18\nlr: 0.1\n  epochs: 3\n")
    with pytest.raises(UserError, match=rf"^{path}:3:9: task file is not valid YAML: mapping "
                                        rf"values are not allowed here"):
        load_task(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match=rf"{path}:1:8: .* constructor for the tag"):
        load_task(path)


# ------------------------------------------------------------------------------ the recipe

@pytest.mark.parametrize("keys, message", [
    ({"epochs": 3, "steps": 100},
     "Give the training budget as `epochs` or as `steps`, not both, but got epochs=3 and "
     "steps=100; remove one."),
    ({"steps": 0}, "`steps` must be an int >= 1, but got 0."),
    ({"accumulate": 0}, "`accumulate` must be an int >= 1, but got 0."),
    ({"schedule": "linear"}, "`schedule` must be one of constant, cosine, but got 'linear'."),
    ({"warmup": 1.5}, "`warmup` is a number of optimiser steps (a whole number >= 1) or a "
                      "fraction of the budget in [0, 1), but got 1.5; e.g. 100 or 0.05."),
    ({"warmup": -0.1}, "but got -0.1; e.g. 100 or 0.05."),
    ({"warmup": -1}, "but got -1; e.g. 100 or 0.05."),
    ({"steps": 10, "warmup": 10}, "`warmup: 10` steps leaves nothing of the `steps: 10` budget; "
                                  "make it shorter (e.g. a fraction: 0.05)."),
    ({"precision": "fp8"}, "`precision` must be one of auto, bf16, fp16, fp32, but got 'fp8'."),
    ({"channels_last": "yes"}, "`channels_last` must be one of auto, true, false, but got "
                               "'yes'."),
    ({"distill": {"weight": 1.5}}, "`distill.weight` is the share of the distillation term "
                                   "in [0, 1] (0: labels only, 1: the parent's soft targets "
                                   "only), but got 1.5."),
    ({"distill": {"weight": -0.5}}, "but got -0.5."),
    ({"distill": {"temperature": 0}}, "`distill.temperature` must be > 0 (1: the parent's own "
                                      "probabilities, higher: softer), but got 0."),
    ({"distill": {"wieght": 0.5}}, "Unknown `distill` key(s) 'wieght' (did you mean "
                                   "'weight'?); known keys: temperature, weight."),
    ({"distill": 0.5}, "`distill` must be a mapping, but got 0.5 (float)."),
    ({"init": "scratch", "distill": {"weight": 0.5}},
     "`distill` learns from the parent, so it needs `init: parent`, but got `init: scratch`; "
     "set `init: parent` or remove `distill`."),
    ({"dataset": "density:moons", "distill": {}}, "a density model (`dataset: density:moons`) "
                                                  "has none: remove `distill`."),
])
def test_recipe_mistakes_are_one_line(tmp_path, keys, message):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"model": "timm:resnet18", **keys}))
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(err.value).endswith(message) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_recipe_keys_round_trip_and_budget_defaults():
    task = TaskConfig.from_flat({"model": "timm:resnet18", "steps": 500, "schedule": "cosine",
                                 "warmup": 0.05, "accumulate": 4, "precision": "bf16",
                                 "channels_last": False, "compile": True,
                                 "distill": {"weight": 0.7, "temperature": 4}})
    assert TaskConfig.from_flat(task.to_flat()) == task
    assert task.recipe.epochs is None and task.recipe.rounds == 10
    assert task.recipe.distill.weight == 0.7 and task.recipe.distill.temperature == 4
    assert RecipeConfig().epochs == 2 and RecipeConfig().rounds == 2  # the old default
    assert RecipeConfig(warmup=100, steps=101).warmup == 100
    assert RecipeConfig(distill={}).distill.weight == 0.5


def test_parent_key_follows_the_keys_that_change_the_parents_weights():
    from minsearch.tasks.candidate import parent_key

    base = {"model": "timm:resnet18"}
    key = parent_key(TaskConfig.from_flat(base))
    same = [{"schedule": "constant", "warmup": 0, "precision": "auto", "accumulate": 1},
            {"steps": 300}, {"epochs": 7}, {"distill": {"weight": 0.9}}]
    for changes in same:  # defaults written out, and what only the candidates use
        assert parent_key(TaskConfig.from_flat({**base, **changes})) == key, changes
    other = [{"schedule": "cosine"}, {"warmup": 0.1}, {"accumulate": 2}, {"precision": "bf16"},
             {"channels_last": True}, {"compile": True}]
    keys = {parent_key(TaskConfig.from_flat({**base, **changes})) for changes in other}
    assert len(keys) == len(other) and key not in keys
def test_seeds_count_from_the_seed_or_are_listed_and_leave_the_parent_alone():
    from minsearch.tasks.candidate import parent_key

    base = TaskConfig.from_flat({"model": "timm:x", "seed": 4})
    assert base.recipe.seed_list == (4,)
    three = TaskConfig.from_flat({"model": "timm:x", "seed": 4, "seeds": 3})
    assert three.recipe.seed_list == (4, 5, 6)
    listed = TaskConfig.from_flat({"model": "timm:x", "seeds": [9, 2]})
    assert listed.recipe.seed_list == (9, 2)
    assert parent_key(three) == parent_key(base)  # the parent trains once, with `seed`
    assert TaskConfig.from_flat(three.to_flat()) == three
    budgets = TaskConfig.from_flat({"model": "timm:x", "max_param_bytes": 1000,
                                    "max_flops": 2e6})
    assert budgets.measure.budgets == {"param_bytes": 1000.0, "flops": 2e6}
