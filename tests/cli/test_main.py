"""The command's error contract: a user's mistake is one line on stderr and exit 2 (with
``--debug``, its traceback too); anything else is a bug and propagates with its traceback."""

import subprocess
import sys

import pytest

import minsearch.tasks.config
from minsearch.cli.main import main

TASK = "model: tests.tasks.factories:tiny_mlp\n"


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"minsearch {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("text, message", [
    ("lr: fast", "`lr` must be a number, but got 'fast' (str)."),
    ("cpus_per_trial: one", "`cpus_per_trial` must be a number, but got 'one' (str)."),
    ("epoch: 3", "Unknown task key(s) 'epoch' (did you mean 'epochs'?)"),
    ("lr: 0.1\n  epochs: 3", ":3:9: task file is not valid YAML: mapping values are not "
                             "allowed here."),
])
def test_task_mistakes_are_one_line_and_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "task.yaml"
    path.write_text(TASK + text + "\n")
    assert main(["ln-free", str(path), "--out", str(tmp_path / "x.pt")]) == 2
    line = one_line_error(capsys, "ln-free")
    assert str(path) in line and message in line, line
    assert not (tmp_path / "x.pt").exists()


def test_missing_task_file(tmp_path, capsys):
    assert main(["ln-free", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml' does not exist" in one_line_error(capsys, "ln-free")


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    path = tmp_path / "task.yaml"
    path.write_text(TASK + "lr: fast\n")
    assert main(["--debug", "ln-free", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "UserError" in err
    assert err.strip().splitlines()[-1].startswith("minsearch ln-free: error: ")


@pytest.mark.parametrize("error", [RuntimeError("bug"), KeyError("bug"), TypeError("bug"),
                                   ValueError("bug")])
def test_other_exceptions_propagate(tmp_path, monkeypatch, error):
    """Only UserError is the user's: a KeyError, TypeError or plain ValueError from our own
    code is a bug, and its traceback must show."""
    def broken(path):
        raise error

    monkeypatch.setattr(minsearch.tasks.config, "load_task", broken)
    with pytest.raises(type(error), match="bug"):
        main(["ln-free", str(tmp_path / "task.yaml")])


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(minsearch.tasks.config, "load_task", interrupted)
    assert main(["ln-free", "task.yaml"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_the_command_prints_no_traceback_for_a_user_error(tmp_path):
    """The one end-to-end check, in a real process: stderr is the single error line."""
    path = tmp_path / "task.yaml"
    path.write_text(TASK + "lr: fast\n")
    proc = subprocess.run([sys.executable, "-m", "minsearch.cli.main", "ln-free", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"minsearch ln-free: error: {path}: `lr` must be a number, but got 'fast' (str)."]
