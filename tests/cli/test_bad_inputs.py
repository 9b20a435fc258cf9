"""Every bad input is one line naming the culprit, exit 2, and nothing on disk (issue 12).

Each case runs through ``main([...])`` in-process, for ``search`` (which must find it before
it creates the run folder) and for ``validate`` (the same checks, writing nothing): the
exit code is 2, stderr is the single ``minsearch CMD: error: ...`` line and names the file,
key or spec, ``--out`` is absent and nothing under the test's folder changed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from minsearch.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
F = "tests.tasks.factories"
TASK = {"name": "bad", "model": f"{F}:tiny_mlp", "max_samples": 200, "parent_epochs": 1,
        "epochs": 1}
SPACE = {"trials": 2, "genes": [{"kind": "norm", "options": ["keep", "identity"]}]}


def tree(root: Path) -> list[tuple[str, float, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime, p.stat().st_size)
                  for p in root.rglob("*"))


def write(path: Path, content: dict | str) -> str:
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


def image_tree(root: Path, classes: dict[str, list[tuple[int, int]]]) -> Path:
    """One folder per class holding one PNG per (width, height)."""
    from PIL import Image

    for name, sizes in classes.items():
        (root / name).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("L", size, 40 * i).save(root / name / f"{i}.png")
    return root


TWO_CLASSES = {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3}


def truncated(tmp: Path) -> dict:
    root = image_tree(tmp / "images", TWO_CLASSES)
    png = root / "b" / "1.png"
    png.write_bytes(png.read_bytes()[:40])  # the first bytes of a PNG
    return {"dataset": "imagefolder", "data_root": str(root)}


def folder(classes: dict[str, list[tuple[int, int]]], *, extra: Callable | None = None):
    def make(tmp: Path) -> dict:
        root = image_tree(tmp / "images", classes)
        if extra is not None:
            extra(root)
        return {"dataset": "imagefolder", "data_root": str(root)}

    return make


def task_case(changes: dict) -> Callable[[Path], dict]:
    return lambda tmp: changes


# name -> (task changes, or a function of the test folder giving them; expected fragments:
# "{root}" is the image folder, "{task}" the task file)
CASES: dict[str, tuple[dict | Callable[[Path], dict], list[str]]] = {
    # 2. image folders
    "truncated image": (truncated, ["Image 'b/1.png' under `data_root` '{root}' cannot be read",
                                    "remove or replace it"]),
    # (A file whose header is whole but whose pixels are cut short is found when it is read,
    # not before: image folders are streamed. tests/tasks/test_stream.py checks its line.)
    "mixed image sizes": (folder({"a": [(8, 8)] * 3, "b": [(8, 8), (10, 9), (8, 8)]}),
                          ["Images of `dataset: imagefolder` under `data_root` '{root}' differ "
                           "in size: a/0.png is (3, 8, 8) and b/1.png is (3, 9, 10)",
                           "set `image_size: N`"]),
    "empty class folder": (folder(TWO_CLASSES, extra=lambda r: (r / "c").mkdir()),
                           ["Class folder(s) 'c' under `data_root` '{root}' hold no images",
                            "add images or remove the folder(s)"]),
    "class folder without images": (
        folder(TWO_CLASSES, extra=lambda r: ((r / "c").mkdir(), (r / "c" / "x.txt")
                                             .write_text("notes"))),
        ["Class folder(s) 'c'", "hold no images (.jpg"]),
    "no class folders": (folder({}, extra=lambda r: (r.mkdir(), (r / "1.png").write_bytes(
        b"\x89PNG"))), ["`data_root` '{root}' holds no class folders", "one sub-folder of "
                                                                   "images per class"]),
    "one class folder": (folder({"a": [(8, 8)] * 3}),
                         ["`data_root` '{root}' holds 1 class folder ('a', 3 images)",
                          "at least two classes"]),
    "data_root missing": (task_case({"dataset": "imagefolder", "data_root": "/no/such/dir"}),
                          ["`data_root` '/no/such/dir' does not exist"]),
    # 4. the user's own code raising
    "model factory raises": (
        task_case({"model": f"{F}:broken_model"}),
        [f"Model factory '{F}:broken_model' failed while building the model: ValueError: "
         f"depth must be even, got 3; run with --debug for its traceback."]),
    "TypeError inside a factory": (
        task_case({"model": f"{F}:type_error_model"}),
        [f"Model factory '{F}:type_error_model' failed while building the model: TypeError"]),
    "multi-line error": (task_case({"model": f"{F}:multiline_error_model"}),
                         ["RuntimeError: shapes do not match: weight (10, 64) input (2, 192);"]),
    "factory argument unknown": (task_case({"model": f"{F}:TinyMLP?depth=3"}),
                                 [f"Factory {F}:TinyMLP rejected its arguments {{'depth': 3}}",
                                  "unexpected keyword argument 'depth'"]),
    "dataset function raises": (
        task_case({"dataset": f"{F}:broken_dataset"}),
        [f"Dataset function '{F}:broken_dataset' failed while loading the data: "
         f"FileNotFoundError: no such file: /data/train.npz; run with --debug for its "
         f"traceback."]),
    "dataset item raises": (
        task_case({"dataset": f"{F}:broken_items_dataset"}),
        [f"Dataset function '{F}:broken_items_dataset' failed while reading item 3: KeyError"]),
    "data_kwargs unknown": (task_case({"dataset": f"{F}:pair_dataset",
                                       "data_kwargs": {"size": 3}}),
                            [f"Dataset function '{F}:pair_dataset' (`data_kwargs`) rejected its "
                             f"arguments {{'size': 3}}"]),
    # 5. wrong types name the key, the value and the type
    "lr: fast": (task_case({"lr": "fast"}),
                 ["{task}: `lr` must be a number, but got 'fast' (str)."]),
    "cpus_per_trial: one": (task_case({"cpus_per_trial": "one"}),
                            ["{task}: `cpus_per_trial` must be a number, but got 'one' (str)."]),
    # 9. fewer than two classes; 10. other label surprises
    "one class": (task_case({"dataset": f"{F}:one_class_dataset"}),
                  [f"`dataset: {F}:one_class_dataset` has 1 class (label 0 in all 40 examples)",
                   "a classifier needs at least two"]),
    "mixed sizes from a function": (
        task_case({"dataset": f"{F}:mixed_size_dataset"}),
        [f"Images of `dataset: {F}:mixed_size_dataset` differ in size: item 0 is (1, 6, 6) "
         f"and item 5 is (1, 7, 6)",
         f"make {F}:mixed_size_dataset return images of one size"]),
    "string labels": (task_case({"dataset": f"{F}:string_label_dataset"}),
                      [f"`dataset: {F}:string_label_dataset` has a label 'dog' (str)",
                       "class indices 0, 1, ..., K-1"]),
    "negative labels": (task_case({"dataset": f"{F}:negative_label_dataset"}),
                        [f"`dataset: {F}:negative_label_dataset` has a label -1"]),
    "one-hot labels": (task_case({"dataset": f"{F}:one_hot_dataset"}),
                       ["labels (40, 2) (one-hot labels? pass y.argmax(1))"]),
}

# 1. files that are not valid YAML, or not a mapping: (file, text, fragments; "{path}")
YAML_CASES = {
    "task syntax": ("task", "model: x\n  lr: 0.1\n",
                    ["{path}:2:5: task file is not valid YAML: mapping values are not allowed"]),
    "space syntax": ("space", "trials: 2\ngenes: [\n",
                     ["{path}:3:1: space file is not valid YAML"]),
    "task tab": ("task", "model: x\n\tlr: 0.1\n",
                 ["{path}:2:1: task file is not valid YAML: found character '\\t'"]),
    "task key twice": ("task", f"model: {F}:tiny_mlp\nlr: 0.1\nlr: 0.2\n",
                       ["{path}:3:1: task file is not valid YAML: key 'lr' is given twice "
                        "(first on line 2); keep one."]),
    "space key twice": ("space", "trials: 2\ntrials: 3\n",
                        ["{path}:2:1: space file is not valid YAML: key 'trials' is given "
                         "twice"]),
    "task a list": ("task", "- model: x\n", ["{path}: A task must be a mapping"]),
    "space a list": ("space", "- trials: 2\n", ["{path}: A space must be a mapping"]),
}


def refused(capsys, tmp_path: Path, argv: list[str], out: Path) -> str:
    """Run ``main(argv)``; check the contract; return the error line."""
    before = tree(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    command = argv[0] if not argv[0].startswith("--") else argv[1]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"minsearch {command}: error: "), captured.err
    assert captured.out == ""
    assert not out.exists()
    assert tree(tmp_path) == before  # nothing created, nothing touched
    return lines[0]


@pytest.fixture
def space_path(tmp_path: Path) -> str:
    return write(tmp_path / "space.yaml", SPACE)


@pytest.mark.parametrize("command", ["search", "validate"])
@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, space_path, command,
                                                        case):
    changes, fragments = CASES[case]
    changes = changes(tmp_path) if callable(changes) else changes
    task = write(tmp_path / "task.yaml", {**TASK, **changes})
    out = tmp_path / "run"
    line = refused(capsys, tmp_path, [command, task, "--space", space_path, "--out", str(out)],
                   out)
    for fragment in fragments:
        fragment = fragment.replace("{root}", str(tmp_path / "images")).replace("{task}", task)
        assert fragment in line, line


@pytest.mark.parametrize("command", ["search", "validate"])
@pytest.mark.parametrize("case", YAML_CASES)
def test_a_file_that_is_not_valid_yaml_names_the_spot(tmp_path, capsys, command, case):
    which, text, fragments = YAML_CASES[case]
    files = {"task": tmp_path / "task.yaml", "space": tmp_path / "space.yaml"}
    write(files["task"], TASK)
    write(files["space"], SPACE)
    write(files[which], text)
    out = tmp_path / "run"
    line = refused(capsys, tmp_path, [command, str(files["task"]), "--space",
                                      str(files["space"]), "--out", str(out)], out)
    for fragment in fragments:
        assert fragment.replace("{path}", str(files[which])) in line, line


@pytest.mark.parametrize("command", ["search", "validate"])
def test_cuda_on_a_machine_without_it(tmp_path, capsys, space_path, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    task = write(tmp_path / "task.yaml", {**TASK, "device": "cuda"})
    out = tmp_path / "run"
    line = refused(capsys, tmp_path, [command, task, "--space", space_path, "--out", str(out)],
                   out)
    assert f"{task}: `device: cuda` was asked for but no CUDA device is visible" in line
    assert "`device: auto` or `device: cpu`" in line


@pytest.mark.parametrize("out", ["a_file", "a_file/run"])
def test_search_refuses_an_out_that_is_or_lies_in_a_file(tmp_path, capsys, space_path, out):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    task = write(tmp_path / "task.yaml", TASK)
    path = tmp_path / out
    before = tree(tmp_path)
    assert main(["search", task, "--space", space_path, "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and str(a_file) in err
    assert "file" in err and "choose another --out" in err
    assert tree(tmp_path) == before and a_file.read_text() == "mine"


@pytest.mark.parametrize("command", ["report", "front", "export", "resume"])
@pytest.mark.parametrize("which", ["an empty folder", "a folder of other files", "missing"])
def test_a_folder_that_is_not_a_run(tmp_path, capsys, command, which):
    path = tmp_path / "not_a_run"
    if which != "missing":
        path.mkdir()
    if which == "a folder of other files":
        (path / "notes.txt").write_text("mine")
    extra = ["--trial", "1", "--out", str(tmp_path / "x.pt")] if command == "export" else []
    before = tree(tmp_path)
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"minsearch {command}: error: {path} is not a minsearch run folder (no search.json); "
        f"start one with `minsearch search TASK --space SPACE --out {path}`."]
    assert tree(tmp_path) == before


def test_debug_shows_the_users_own_traceback(tmp_path, capsys, space_path):
    task = write(tmp_path / "task.yaml", {**TASK, "model": f"{F}:broken_model"})
    out = tmp_path / "run"
    assert main(["--debug", "search", task, "--space", space_path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in broken_model" in err and 'raise ValueError("depth must be even, got 3")' in err
    assert "The above exception was the direct cause" in err
    assert err.strip().splitlines()[-1].startswith("minsearch search: error: Model factory")
    assert not out.exists()


def test_search_prints_no_traceback_in_a_real_process(tmp_path, space_path):
    """The end-to-end check: the user's dataset function raising, in a real ``minsearch``
    process, is the one line on stderr, exit 2, and no run folder."""
    task = write(tmp_path / "task.yaml", {**TASK, "dataset": f"{F}:broken_dataset"})
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "minsearch.cli.main", "search", task, "--space",
                           space_path, "--out", str(out)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"minsearch search: error: Dataset function '{F}:broken_dataset' failed while loading "
        f"the data: FileNotFoundError: no such file: /data/train.npz; run with --debug for its "
        f"traceback."]
    assert not out.exists()
