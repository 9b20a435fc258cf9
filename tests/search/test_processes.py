"""Leftovers of a killed driver are found by recorded pid (and start time) and ended."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from minsearch.errors import UserError
from minsearch.search.processes import (
    end_stale_processes,
    record_driver,
    stale_processes,
    start_time,
)
from minsearch.search.run_dir import RunDir


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def driver_file(tmp_path):
    return RunDir(tmp_path).driver_json


def write_driver(tmp_path, pid, processes):
    driver_file(tmp_path).write_text(json.dumps(
        {"pid": pid, "start": 1, "session": None, "processes": processes}))


def test_recorded_leftovers_of_a_dead_driver_are_ended(tmp_path, sleeper):
    write_driver(tmp_path, dead_pid(), {str(sleeper.pid): start_time(sleeper.pid)})
    assert end_stale_processes(driver_file(tmp_path)) == [sleeper.pid]
    assert sleeper.wait(timeout=5) != 0


def test_a_reused_pid_is_left_alone(tmp_path, sleeper):
    write_driver(tmp_path, dead_pid(), {str(sleeper.pid): start_time(sleeper.pid) - 1})
    assert stale_processes(driver_file(tmp_path)) == []
    assert sleeper.poll() is None


def test_resume_refuses_while_the_driver_lives(tmp_path):
    record_driver(driver_file(tmp_path))  # this process plays the driver
    with pytest.raises(UserError, match="still running"):
        stale_processes(driver_file(tmp_path))


def test_no_driver_file_means_nothing_to_end(tmp_path):
    assert end_stale_processes(driver_file(tmp_path)) == []
