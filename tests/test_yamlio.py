"""Reading the user's YAML: safe, and every failure one line that points at the spot."""

import pytest

from minsearch.errors import UserError
from minsearch.yamlio import read_yaml


def test_reads_mappings_and_empty_files(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 3e-3\nsplit: [0.6, 0.2, 0.2]\n")
    assert read_yaml(tmp_path / "a.yaml", "task file") == {"lr": "3e-3", "split": [0.6, 0.2, 0.2]}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml", "task file") is None


@pytest.mark.parametrize("text, where, problem", [
    ("a: 1\n  b: 2\n", "2:4", "mapping values are not allowed here"),
    ("a: [1, 2\n", "2:1", "expected ',' or ']', but got '<stream end>'"),
    ("a: !!python/object/apply:os.system [echo]\n", "1:4", "could not determine a constructor"),
])
def test_syntax_errors_give_file_line_and_column(tmp_path, text, where, problem):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        read_yaml(path, "space file")
    assert str(err.value).startswith(f"{path}:{where}: space file is not valid YAML: {problem}")


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(UserError, match=r"^Space file '.*nope.yaml' does not exist"):
        read_yaml(tmp_path / "nope.yaml", "space file")
    with pytest.raises(UserError, match="is a folder, not a file"):
        read_yaml(tmp_path, "task file")


@pytest.mark.parametrize("text, where, key", [
    ("lr: 0.1\nepochs: 2\nlr: 0.2\n", "3:1", "'lr' is given twice (first on line 1)"),
    ("genes:\n  - {kind: norm, kind: identity}\n", "2:18",
     "'kind' is given twice (first on line 2)"),
])
def test_a_key_given_twice_is_refused(tmp_path, text, where, key):
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        read_yaml(path, "task file")
    assert str(err.value) == f"{path}:{where}: task file is not valid YAML: key {key}; keep one."


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("base: &b {lr: 0.1, epochs: 2}\ntask:\n  <<: *b\n  lr: 0.2\n")
    assert read_yaml(path, "task file")["task"] == {"lr": 0.2, "epochs": 2}
