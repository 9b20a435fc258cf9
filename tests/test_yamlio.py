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
