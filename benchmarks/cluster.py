"""Trials per minute: one trial at a time against two, one worker node against two, and a
GPU split in quarters against whole GPUs.

Each case is a real ``minsearch search`` of the digits ViT (``tasks/digits_vit.yaml``, the
shipped space, ``--trials N``) in a subprocess. Throughput counts the trials phase only:
N / (last trial's end - first trial's start), from the ``started_at``/``ended_at`` columns of
``results.csv`` (start-up, parent training and result files excluded). The scheduling
overhead per trial is the time the trial slots stood idle during that phase:
(phase x slots - sum of trial durations) / N.

    PYTHONPATH=. python benchmarks/cluster.py local   # max_concurrent 1 vs 2, local Ray
    PYTHONPATH=. python benchmarks/cluster.py nodes   # 1 worker node x 2 CPUs vs 2 x 1 CPU
    PYTHONPATH=. python benchmarks/cluster.py gpu     # gpus_per_trial 1 vs 0.25 (CUDA only)
    PYTHONPATH=. python benchmarks/cluster.py storage # run folder's tune/ vs --storage s3://

``storage`` runs the same local search with Ray Tune's experiment in the run folder and on an
S3 server (moto's, on 127.0.0.1, from the ``test`` extra): what writing every checkpoint and
snapshot through S3 costs a trial (a real object store adds the network's latency).

``nodes`` uses Ray's multi-node test cluster (``ray.cluster_utils.Cluster``) on this machine:
the same total cores, spread over one or two raylets.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from minsearch.search.multifidelity import without_strategy

ROOT = Path(__file__).resolve().parents[1]


def search(folder: Path, trials: int, task_changes: dict, address: str | None = None,
           cpus: int | None = None, storage: str | None = None) -> dict[str, float]:
    """Run one search; its trials-phase figures."""
    task = yaml.safe_load((ROOT / "tasks/digits_vit.yaml").read_text())
    task.update({"seeds": 1, **task_changes})  # one seed per trial, as the figures were made
    task_file = folder / "task.yaml"
    task_file.write_text(yaml.safe_dump(task))
    space = yaml.safe_load((ROOT / "search_spaces/digits_vit.yaml").read_text())
    space_file = folder / "space.yaml"  # one Ray trial per genome, as the figures were made
    space_file.write_text(yaml.safe_dump(without_strategy(space)))
    run_dir = folder / "run"
    command = [sys.executable, "-m", "minsearch.cli.main", "search", str(task_file), "--space",
               str(space_file), "--trials", str(trials), "--out", str(run_dir), "--quiet"]
    command += ["--address", address] if address else []
    command += ["--cpus", str(cpus)] if cpus else []
    command += ["--storage", storage] if storage else []
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"search failed ({done.returncode}):\n{output}")
    frame = pd.read_csv(run_dir / "results.csv", dtype={"gpus": str}, keep_default_na=False)
    ran = frame[frame["started_at"] > 0]
    phase = ran["ended_at"].max() - ran["started_at"].min()
    busy = (ran["ended_at"] - ran["started_at"]).sum()
    slots = task["max_concurrent"]
    return {"trials": len(ran), "wall_s": wall, "phase_s": phase,
            "per_minute": 60 * len(ran) / phase, "per_hour": 3600 * len(ran) / phase,
            "trial_s": busy / len(ran), "overhead_s": (phase * slots - busy) / len(ran),
            "workers": ran["worker_pid"].nunique(), "nodes": ran["node"].nunique(),
            "gpus": sorted(set(ran["gpus"]))}


def show(name: str, figures: dict[str, float]) -> None:
    print(f"{name:<34} {figures['trials']:>3.0f} trials in {figures['phase_s']:6.1f} s "
          f"({figures['wall_s']:5.1f} s wall): {figures['per_minute']:5.2f} trials/min, "
          f"{figures['trial_s']:5.2f} s a trial, overhead {figures['overhead_s']:5.2f} s a "
          f"trial; {figures['workers']:.0f} workers on {figures['nodes']:.0f} node(s), GPU "
          f"ids seen by trials {figures['gpus']}",
          flush=True)


def ratio(name: str, new: dict, old: dict) -> None:
    print(f"{name}: throughput x{new['per_minute'] / old['per_minute']:.2f}, overhead per "
          f"trial {new['overhead_s'] - old['overhead_s']:+.2f} s", flush=True)


def local(args) -> None:
    one = search(Path(tempfile.mkdtemp()), args.trials, {"max_concurrent": 1}, cpus=2)
    show("local, max_concurrent 1", one)
    two = search(Path(tempfile.mkdtemp()), args.trials, {"max_concurrent": 2}, cpus=2)
    show("local, max_concurrent 2", two)
    ratio("2 at a time vs 1", two, one)


def nodes(args) -> None:
    from tests.cluster.harness import local_cluster

    results = {}
    for count, cpus in ((1, 2), (2, 1)):
        with local_cluster(workers=count, cpus=cpus) as cluster:
            results[count] = search(Path(tempfile.mkdtemp()), args.trials,
                                    {"max_concurrent": 2}, address=cluster.address)
        show(f"{count} worker node(s) x {cpus} CPU(s)", results[count])
    ratio("2 nodes vs 1 (same cores)", results[2], results[1])


def gpu(args) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu: no CUDA device here; run it where one is.")
    whole = search(Path(tempfile.mkdtemp()), args.trials, {
        "device": "cuda", "gpus_per_trial": 1, "cpus_per_trial": 2, "max_concurrent": 1})
    show("gpus_per_trial 1 (1 at a time)", whole)
    quarter = search(Path(tempfile.mkdtemp()), args.trials, {
        "device": "cuda", "gpus_per_trial": 0.25, "cpus_per_trial": 2, "max_concurrent": 4})
    show("gpus_per_trial 0.25 (4 at a time)", quarter)
    print(f"trials/hour: {whole['per_hour']:.0f} (1 GPU a trial) vs {quarter['per_hour']:.0f} "
          f"(0.25 GPU a trial), x{quarter['per_hour'] / whole['per_hour']:.2f}", flush=True)


def storage(args) -> None:
    import logging
    import os

    import pyarrow.fs
    from moto.server import ThreadedMotoServer

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_EC2_METADATA_DISABLED="true")  # the searches inherit them
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        fs, _ = pyarrow.fs.FileSystem.from_uri(f"s3://bench?{query}&allow_bucket_creation=true")
        fs.create_dir("bench")
        disk = search(Path(tempfile.mkdtemp()), args.trials, {}, cpus=2)
        show("run folder (local disk)", disk)
        s3 = search(Path(tempfile.mkdtemp()), args.trials, {}, cpus=2,
                    storage=f"s3://bench/runs?{query}")
        show("--storage s3:// (moto, 127.0.0.1)", s3)
        ratio("S3 vs local disk", s3, disk)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["local", "nodes", "gpu", "storage"])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    {"local": local, "nodes": nodes, "gpu": gpu, "storage": storage}[args.case](args)


if __name__ == "__main__":
    main()
