"""A multi-node Ray cluster on one machine for the tests: Ray's own test cluster
(``ray.cluster_utils.Cluster``, what Ray's test suite uses: a head and worker nodes, each a
raylet with its workers, added and removed in this process tree), all on 127.0.0.1.

The head has no CPU, so every trial runs on a worker node; Ray's health check is shortened so
that a killed node is declared dead in ~3 s instead of ~15 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]

# Every process of the cluster (and the drivers the tests start) sees these: the repository on
# the path (an installed minsearch on a real cluster), Ray kept on loopback, no usage reports.
CLUSTER_ENV = {"PYTHONPATH": str(ROOT), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_USAGE_STATS_ENABLED": "0",
               # a lost head: raylets and drivers give up on it after 10 s instead of 60 (a
               # `_system_config` key of the head does not reach the worker nodes' raylets)
               "RAY_gcs_rpc_server_reconnect_timeout_s": "10"}
FAST_HEALTH_CHECK = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                     "health_check_initial_delay_ms": 1000}
HEAD_ARGS = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
             "_system_config": FAST_HEALTH_CHECK}


class LocalCluster:
    """A head (0 CPUs) and worker nodes (``cpus`` each) from ``ray.cluster_utils.Cluster``."""

    def __init__(self, workers: int = 2, cpus: int = 1) -> None:
        from ray.cluster_utils import Cluster

        self.cpus = cpus
        self.cluster = Cluster(initialize_head=True, head_node_args=HEAD_ARGS)
        self.ensure_workers(workers)

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def workers(self) -> dict[str, object]:
        """Live worker nodes by Ray node id."""
        return {node.node_id: node for node in self.cluster.worker_nodes}

    def ensure_workers(self, count: int) -> None:
        while len(self.cluster.worker_nodes) < count:
            self.cluster.add_node(num_cpus=self.cpus, node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes()

    def kill_node(self, node_id: str, worker_pids: list[int] = ()) -> None:
        """SIGKILL a worker node: the given worker processes first, then its raylet and
        everything else it runs (``remove_node`` without a graceful stop)."""
        for pid in worker_pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.remove_node(self.workers[node_id], allow_graceful=False)

    def kill_head(self) -> list[int]:
        """SIGKILL the head: its GCS, raylet, agents and the rest. Returns the worker nodes'
        raylets, left to end by themselves (their trial workers end with them).

        This process's own GCS clients (Ray's test cluster keeps one per node, and one for
        its state) are dropped first: a client that cannot reach its GCS for
        ``gcs_rpc_server_reconnect_timeout_s`` terminates its process (measured: the test
        process, 60 s after the head died)."""
        head = self.cluster.head_node
        for node in self.cluster.worker_nodes:
            node._gcs_client = None
        self.cluster.global_state.disconnect()
        self._lost = [pid for node in self.cluster.worker_nodes for pid in node_tree(node)]
        for pid in children(head.all_processes["raylet"][0].process.pid):  # its agents
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.remove_node(head, allow_graceful=False)
        return [info.process.pid for node in self.cluster.worker_nodes
                for info in node.all_processes["raylet"]]

    def rejoin(self, workers: int) -> list[str]:
        """After a lost head: a new head (same settings, a new address) and ``workers`` new
        worker nodes, as `ray start --head` and `ray start --address` would. The old worker
        nodes' processes still alive are SIGKILLed, as `ray stop` there would; returned: their
        names (the raylets' agents, which Ray 2.60 leaves running when their raylet gives up)."""
        stale = {pid: process_name(pid) for pid in getattr(self, "_lost", []) if pid_alive(pid)}
        for pid in stale:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for node in list(self.cluster.worker_nodes):
            self.cluster.remove_node(node, allow_graceful=False)
        self.cluster.add_node(**HEAD_ARGS)
        self.ensure_workers(workers)
        return sorted(stale.values())

    def pids(self) -> list[int]:
        """Every process the cluster's nodes started (GCS, raylets, agents), while alive."""
        nodes = [self.cluster.head_node, *self.cluster.worker_nodes]
        return [info.process.pid for node in nodes if node is not None
                for infos in node.all_processes.values() for info in infos]

    def shutdown(self) -> list[int]:
        """Stop every node; the pids of the cluster's processes still alive after (none)."""
        pids, address = self.pids(), self.address
        self.cluster.shutdown()
        forget_address(address)
        return [pid for pid in pids if pid_alive(pid)]


@contextlib.contextmanager
def local_cluster(workers: int = 2, cpus: int = 1,
                  env: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    """A :class:`LocalCluster` with :data:`CLUSTER_ENV` and ``env`` set while it runs (its
    nodes' processes inherit them); shut down (no process left) on exit."""
    env = dict(CLUSTER_ENV, **(env or {}))
    environment = mock.patch.dict(os.environ, env)  # restored exactly on exit
    environment.start()
    cluster = None
    try:
        cluster = LocalCluster(workers, cpus)
        yield cluster
    finally:
        left = cluster.shutdown() if cluster is not None else []
        environment.stop()
    assert not left, f"cluster processes alive after shutdown: {left}"


def forget_address(address: str) -> None:
    """Remove Ray's note of the last cluster started here (``ray start --head`` writes it for
    ``address="auto"``; ``ray stop`` would remove it) when it names ``address``."""
    note = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir()), "ray", "ray_current_cluster")
    with contextlib.suppress(OSError):
        if note.read_text().strip() == address:
            note.unlink()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def node_tree(node) -> list[int]:
    """A node's processes and their children (a raylet's agents and workers)."""
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    return pids + [child for pid in pids for child in children(pid)]


def process_name(pid: int) -> str:
    """The first word of a process's command line ('' once it is gone)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    return ""


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it is truthy (returned) or ``timeout`` s pass (AssertionError
    naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)
