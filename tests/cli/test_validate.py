"""``minsearch validate``: every check ``search`` makes before it trains, in-process, writing
nothing; exit 0 with a summary, or exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minsearch.cli.main import main
from tests.search.conftest import TINY_SPACE, TINY_TASK, write_yaml


@pytest.fixture
def files(tmp_path: Path):
    """Writes a task and a space (with changes) into ``tmp_path``; returns their paths."""

    def make(task: dict | None = None, space: dict | None = None) -> tuple[str, str]:
        task_path = write_yaml(tmp_path / "task.yaml", {**TINY_TASK, **(task or {})})
        space_path = write_yaml(tmp_path / "space.yaml", {**TINY_SPACE, **(space or {})})
        return str(task_path), str(space_path)

    return make


def tree(root: Path) -> list[tuple[str, float]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime) for p in root.rglob("*"))


def validate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_search_passes_with_a_summary_and_writes_nothing(files, tmp_path, capsys):
    task, space = files(space={"plugins": ["tests.search.plugins.trial_log"]})
    before = tree(tmp_path)
    code, out, err = validate(capsys, task, "--space", space, "--out", str(tmp_path / "run"))
    assert (code, err) == (0, "")
    assert "genes: 2 over" in out and "norm: 3 options" in out
    assert "space: 9 genomes; 5 trials with nsga2, seed 0" in out
    assert "plugins: tests.search.plugins.trial_log" in out
    assert "constraint: accuracy drop <= 0.5" in out
    assert out.strip().splitlines()[-1].startswith("ok: the search would start")
    assert tree(tmp_path) == before  # no run folder, no file touched


@pytest.mark.parametrize("task, space, args, message", [
    ({}, {"genes": [{"kind": "norm", "options": ["dty"]}]}, [],
     "Unknown option 'dty' for norm"),
    ({}, {"sampler": {"name": "tpe", "n_startup": 2}}, [],
     "takes no parameter(s) n_startup"),
    ({}, {"plugins": ["tests.search.plugins.missing"]}, [],
     "Plugin 'tests.search.plugins.missing' cannot be imported"),
    ({"model": TINY_TASK["model"].replace("num_classes=10", "num_classes=5")}, {}, [],
     "but the data needs (2, 10)"),
    ({"objectives": ["accuracy", "loss_p9"]}, {}, [], "Unknown objective 'loss_p9'"),
    ({}, {}, ["--trials", "0"], "--trials must be >= 1, but got 0"),
    ({"warmup": 12}, {}, [], "task.yaml: `warmup: 12` is 12 optimiser steps, but the whole "
                             "budget is 12 steps"),  # 1 epoch of 360 examples in batches of 32
])
def test_a_failed_check_is_one_line_and_exit_2(files, tmp_path, capsys, task, space, args,
                                               message):
    task_path, space_path = files(task, space)
    before = tree(tmp_path)
    code, out, err = validate(capsys, task_path, "--space", space_path, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("minsearch validate: error: ")
    assert message in err
    assert tree(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("task, message", [
    ({"device": "cuda"}, "`device: cuda` was asked for but no CUDA device is visible"),
    ({"gpus_per_trial": 1}, "`gpus_per_trial: 1` needs 1 GPU(s) but this machine has 0"),
])
def test_devices_this_machine_lacks_are_refused(files, capsys, task, message):
    task_path, space_path = files(task)
    code, _, err = validate(capsys, task_path, "--space", space_path)
    assert code == 2 and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_cluster_finds_its_own_gpus(files, capsys):
    task_path, space_path = files({"gpus_per_trial": 1})
    code, out, _ = validate(capsys, task_path, "--space", space_path, "--address", "auto")
    assert code == 0 and "ok:" in out


def test_out_must_not_be_a_file_or_a_run(files, tmp_path, capsys):
    task_path, space_path = files()
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    code, _, err = validate(capsys, task_path, "--space", space_path, "--out", str(a_file))
    assert code == 2 and "is a file" in err
    missing = tmp_path / "no_space.yaml"
    code, _, err = validate(capsys, task_path, "--space", str(missing))
    assert code == 2 and "does not exist" in err
