"""``minsearch search --storage s3://…``: Ray Tune's experiment and checkpoints on an S3 server
(moto's, on 127.0.0.1), the run folder local. One search shared by the tests: stopped with
SIGTERM once the baseline has finished, resumed from the URI (trials in flight continue from
their checkpoints on S3), then its front exported from S3.

SIGTERM, not SIGKILL: Ray Tune uploads its experiment snapshot file by file after writing it
on the driver, and waits for the last upload only when the search ends or is stopped. A driver
SIGKILLed at a URI leaves a snapshot that can be stale or cut mid-upload (measured here: a
finished trial trained again, a trial whose named checkpoint was already deleted ended FAILED,
two trials with one number); docs/distributed.md says so."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from unittest import mock

import pandas as pd
import pytest

from minsearch.cli.main import main
from minsearch.errors import UserError
from minsearch.search.storage import experiment_uri, open_uri
from tests.search.accounting import assert_exact_accounting, finished_records, trainings
from tests.search.conftest import (
    TINY_SPACE,
    TINY_TASK,
    Drivers,
    session_processes,
    write_yaml,
)
from tests.search.plugins.trial_log import VARIABLE as TRIAL_LOG

pytestmark = pytest.mark.slow

TRIALS = 3
BUCKET = "minsearch-runs"
# moto accepts any credentials; the driver and its trial workers read them from the environment
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_search(tmp_path_factory):
    """A search of TRIALS trials with ``--storage`` on a local S3 server, its driver stopped
    by SIGTERM after the baseline finished, then resumed: (run folder, storage URI, bucket
    file system, trials finished before the stop, resume output, trial log, drivers)."""
    from moto.server import ThreadedMotoServer

    folder = tmp_path_factory.mktemp("s3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    drivers = Drivers(folder)
    credentials = mock.patch.dict(os.environ, CREDENTIALS)  # for this process's reads
    credentials.start()  # (export, the checks); restored exactly at the end
    try:
        host, port = server.get_host_and_port()
        uri = (f"s3://{BUCKET}/searches?endpoint_override={host}:{port}&scheme=http"
               f"&region=us-east-1")
        fs, _ = open_uri(uri + "&allow_bucket_creation=true")
        fs.create_dir(BUCKET)
        log = folder / "trainings.jsonl"
        env = {**CREDENTIALS, TRIAL_LOG: str(log)}  # local Ray's workers inherit the driver's
        task = write_yaml(folder / "task.yaml", dict(TINY_TASK, epochs=3, checkpoint_seconds=0))
        space = write_yaml(folder / "space.yaml", dict(
            TINY_SPACE, trials=TRIALS, plugins=["tests.search.plugins.trial_log"]))
        run_dir = folder / "run"
        driver = drivers.start("search", str(task), "--space", str(space), "--out",
                               str(run_dir), "--storage", uri, "--quiet", env=env,
                               log=folder / "driver.log")
        deadline = time.monotonic() + 240  # the baseline ended: no finished trial is held
        while not any(r["baseline"] for r in finished_records(run_dir)) and driver.poll() is None:
            assert time.monotonic() < deadline, (folder / "driver.log").read_text()[-3000:]
            time.sleep(0.1)
        assert driver.poll() is None, (folder / "driver.log").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGTERM)
        assert driver.wait(timeout=120) == 143, (folder / "driver.log").read_text()[-3000:]
        done_before = {r["trial_id"]: r for r in finished_records(run_dir)}
        code, output = drivers.run("resume", str(run_dir), "--quiet", env=env)
        assert code == 0, output[-3000:]
        yield run_dir, uri, fs, done_before, output, log, drivers
    finally:
        left = drivers.cleanup()
        server.stop()
        credentials.stop()
    assert not left, f"processes of the drivers left running: {left}"


def test_a_stopped_search_on_s3_resumes_from_the_uri_with_exact_accounting(s3_search):
    run_dir, uri, fs, done_before, output, log, drivers = s3_search
    assert 1 <= len(done_before) < TRIALS and "Pareto front" in output
    frame = assert_exact_accounting(run_dir, TRIALS)
    by_id = frame.set_index("trial_id")
    for trial_id, before in done_before.items():  # finished before the stop: kept as they were
        assert by_id.loc[trial_id, "accuracy"] == pytest.approx(before["objectives"]["accuracy"])
    runs = trainings(log)  # a trial finished before the stop never trains again
    for trial_id in done_before:
        assert sum(r["trial_id"] == trial_id for r in runs) == 1, runs
    assert {r["trial_id"] for r in runs} == set(frame["trial_id"])

    # Ray's experiment is on S3 only; the run folder keeps the URI for resume.
    stored = json.loads((run_dir / "search.json").read_text())["storage"]  # the experiment's
    assert stored == uri.replace("/searches?", "/searches/run?")
    assert not (run_dir / "tune").exists()
    from pyarrow.fs import FileSelector

    held = {i.base_name for i in fs.get_file_info(FileSelector(f"{BUCKET}/searches/run"))}
    assert "tuner.pkl" in held and any(n.startswith("experiment_state-") for n in held)
    assert frame["checkpoint"].str.startswith(f"s3://{BUCKET}/searches/run/").all()
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []


def test_export_reads_a_front_members_weights_from_s3(s3_search, tmp_path, capsys):
    from minsearch.tasks.candidate import load_candidate

    run_dir, fs = s3_search[0], s3_search[2]
    front = json.loads((run_dir / "front.json").read_text())["front"]
    assert front and all((run_dir / "front" / f"{t}.pt").is_file() for t in front)  # at finish
    out = tmp_path / "member.pt"
    assert main(["export", str(run_dir), "--trial", str(front[0]), "--out", str(out)]) == 0
    model = load_candidate(out)
    assert sum(p.numel() for p in model.parameters()) > 0

    capsys.readouterr()  # a checkpoint gone from S3: one line naming where it was
    frame = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str}).set_index("trial_id")
    location = frame.loc[str(front[0]), "checkpoint"]
    fs.delete_dir(location.removeprefix("s3://"))
    assert main(["export", str(run_dir), "--trial", str(front[0]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"({location}/model.pt)" in err and "are gone" in err


def test_a_second_run_folder_of_that_name_on_the_same_storage_is_refused(s3_search, tmp_path,
                                                                       capsys):
    run_dir, uri = s3_search[0], s3_search[1]
    task, space = run_dir.parent / "task.yaml", run_dir.parent / "space.yaml"
    other = tmp_path / run_dir.name  # another folder, the same name: the same URI/<name>
    assert main(["search", str(task), "--space", str(space), "--out", str(other), "--storage",
                 uri, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a Ray Tune experiment" in err, err
    assert not other.exists()


def test_the_experiment_uri_keeps_the_query():
    assert experiment_uri("s3://b/runs/?region=x&scheme=http", "vit") == \
        "s3://b/runs/vit?region=x&scheme=http"
    assert experiment_uri("gs://b", "vit") == "gs://b/vit"


@pytest.mark.parametrize(("uri", "problem"), [
    ("/shared/runs", "is not a URI"), ("file:///shared/runs", "is not a URI"),
    ("s3://key:secret@bucket/runs", "holds credentials"), ("nosuch://bucket", "cannot be opened")])
def test_a_storage_that_is_not_a_usable_uri_is_one_line(uri, problem):
    with pytest.raises(UserError, match=problem) as caught:
        open_uri(uri)
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_multifidelity_search_is_refused_with_a_storage_uri(s3_search, tmp_path, capsys):
    uri = s3_search[1]
    task = write_yaml(tmp_path / "task.yaml", dict(TINY_TASK, epochs=2))
    space = write_yaml(tmp_path / "space.yaml", dict(
        TINY_SPACE, strategy="multifidelity",
        rungs=[{"epochs": 1, "seeds": 1}, {"epochs": 2, "seeds": 1}]))
    out = tmp_path / "run"
    assert main(["search", str(task), "--space", str(space), "--out", str(out), "--storage",
                 uri, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rung checkpoints in the run folder" in err, err
    assert not out.exists()
