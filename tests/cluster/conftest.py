"""Fixtures of the multi-node tests: one local Ray cluster for the folder, search inputs whose
trials last a few seconds and checkpoint every epoch, drivers in their own sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.harness import CLUSTER_ENV, local_cluster
from tests.search.conftest import (  # noqa: F401 (drivers: the fixture, shared)
    TINY_SPACE,
    TINY_TASK,
    Drivers,
    drivers,
    write_yaml,
)
from tests.search.plugins.trial_log import VARIABLE as TRIAL_LOG

# ~0.15 s an epoch on 2 busy cores: a trial lasts seconds, long enough to be killed mid-way,
# with a checkpoint after every epoch to continue from.
CLUSTER_TASK = dict(TINY_TASK, epochs=30, checkpoint_seconds=0)


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    """A head and two 1-CPU worker nodes, shared by the tests of this folder (each starts by
    bringing it back to two workers). Trial workers take their environment from their
    raylet, not from the driver: the ``trial_log`` plugin's file is set here, for the whole
    cluster (``cluster.trial_log``; each test empties it first)."""
    log = tmp_path_factory.mktemp("cluster") / "trainings.jsonl"
    with local_cluster(workers=2, cpus=1, env={TRIAL_LOG: str(log)}) as running:
        running.trial_log = log
        yield running


def search_inputs(folder: Path, trials: int, **task) -> tuple[Path, Path]:
    """A task and a space file in ``folder``: the tiny digits ViT, ``trials`` trials, the
    ``trial_log`` plugin (every training run logged with its node and worker)."""
    task_file = write_yaml(folder / "task.yaml", dict(CLUSTER_TASK, **task))
    space_file = write_yaml(folder / "space.yaml", dict(
        TINY_SPACE, trials=trials, plugins=["tests.search.plugins.trial_log"]))
    return task_file, space_file


def driver_env() -> dict[str, str]:
    return {k: v for k, v in CLUSTER_ENV.items() if k != "PYTHONPATH"}  # Drivers sets it


def start_search(cluster, commands: Drivers, folder: Path, trials: int, **task):
    """Two worker nodes, an empty trial log, and ``minsearch search --address`` on the cluster
    (its output in ``folder/driver.log``); the driver's process and the run folder."""
    cluster.ensure_workers(2)
    cluster.trial_log.unlink(missing_ok=True)
    task_file, space_file = search_inputs(folder, trials, **task)
    run_dir = folder / "run"
    driver = commands.start("search", str(task_file), "--space", str(space_file), "--out",
                           str(run_dir), "--address", cluster.address, "--quiet",
                           env=driver_env(), log=folder / "driver.log")
    return driver, run_dir
