"""One driver per run folder: the lock on the folder itself refuses a second driver with one
line naming the holder, and the refused command changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from minsearch.cli.main import main
from minsearch.errors import UserError
from minsearch.search.lock import driver_lock, lock_holder

HOLD = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def held(tmp_path):
    """A run folder (search.json present) that another process holds, as a driver would."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "search.json").write_text("{}")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc.pid
    proc.kill()
    proc.wait()


def test_a_second_holder_is_refused_and_the_lock_goes_with_its_holder(tmp_path):
    assert lock_holder(tmp_path) is None
    with driver_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        with pytest.raises(UserError, match=rf"being run by another minsearch process "
                                            rf"\(pid {os.getpid()}\); wait for it or stop it"):
            with driver_lock(tmp_path):
                pass
    assert lock_holder(tmp_path) is None
    with driver_lock(tmp_path):  # free again
        pass
    assert list(tmp_path.iterdir()) == []  # the lock adds no file


@pytest.mark.parametrize("command", [
    ["resume", "{run}"],
    ["search", "task.yaml", "--space", "space.yaml", "--out", "{run}"],
    ["validate", "task.yaml", "--space", "space.yaml", "--out", "{run}"],
])
def test_commands_on_a_folder_in_use_are_refused_and_change_nothing(held, command, capsys):
    folder, pid = held
    before = snapshot(folder)
    assert main([arg.format(run=folder) for arg in command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"is being run by another minsearch process (pid {pid}); wait for it or stop it" in err
    assert snapshot(folder) == before


def test_resume_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    assert "not a minsearch run folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
