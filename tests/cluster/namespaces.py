"""Separate "hosts" on one machine: Linux network namespaces joined by veth pairs to a bridge,
each running a real Ray node (``ray start``), as users start a cluster.

Layout (addresses are the test's own, inside its namespaces; nothing routes outside them)::

    head namespace   bridge 10.77.0.1/24 ── veth ── worker 1 namespace 10.77.0.2
    (ray start --head, the driver)       └─ veth ── worker 2 namespace 10.77.0.3

Every namespace sees the same filesystem, so the run folder is on a path every node sees, as
on a shared disk. Teardown SIGKILLs every process in the namespaces (``ip netns pids``: only
processes this harness started live there) and deletes them; never ``ray stop``, which would
end every Ray process of the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.harness import CLUSTER_ENV, ROOT, forget_address, wait_until

SUBNET = "10.77.0"
HEAD_PORT = 6379
RAY = str(Path(sys.executable).with_name("ray"))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def cannot_make_namespaces() -> str:
    """Why network namespaces cannot be made here ('' when they can)."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    name = f"mscheck{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as err:
        return f"`ip netns add` failed: {err.stderr.strip()}"
    _ip("netns", "del", name)
    return ""


class NamespaceCluster:
    """A head and ``workers`` worker namespaces (names end with this process's pid)."""

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        tag = os.getpid()
        self.head = f"mshead{tag}"
        self.workers = [f"msw{i}x{tag}" for i in range(1, workers + 1)]
        # Token authentication, as a real cluster should run (a head enables it anyway when
        # ~/.ray/auth_token exists): a token of the test's own, given to every node and driver.
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = dict(os.environ, **CLUSTER_ENV, **auth, **env)
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # real hosts: their own addresses
        self.made: list[str] = []

    @property
    def address(self) -> str:
        return f"{SUBNET}.1:{HEAD_PORT}"

    def ip_of(self, namespace: str) -> str:
        return f"{SUBNET}.{1 if namespace == self.head else self.workers.index(namespace) + 2}"

    def build_network(self) -> None:
        for namespace in (self.head, *self.workers):
            _ip("netns", "add", namespace)
            self.made.append(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", self.head, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.head, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        _ip("-n", self.head, "link", "set", "br0", "up")
        for i, namespace in enumerate(self.workers, start=2):
            _ip("-n", self.head, "link", "add", f"v{i}", "type", "veth", "peer", "name",
                "eth0", "netns", namespace)
            _ip("-n", self.head, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")

    def run_in(self, namespace: str, *command: str, **popen) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", namespace, *command], cwd=ROOT,
                                env=self.env, **popen)

    def ray_start(self, namespace: str) -> None:
        """``ray start`` as the docs tell users: the head with no CPU (trials go to the
        workers), each worker with one."""
        ip = self.ip_of(namespace)
        args = ["--head", f"--port={HEAD_PORT}", "--num-cpus=0", "--include-dashboard=false"] \
            if namespace == self.head else [f"--address={self.address}", "--num-cpus=1"]
        started = self.run_in(namespace, RAY, "start", f"--node-ip-address={ip}",
                              "--disable-usage-stats", *args, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        output, _ = started.communicate(timeout=120)
        assert started.returncode == 0, output[-3000:]

    def start(self) -> None:
        self.build_network()
        self.ray_start(self.head)
        for namespace in self.workers:
            self.ray_start(namespace)

    def pids(self, namespace: str) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                                text=True)
        return [int(pid) for pid in listed.stdout.split()]

    def kill(self, namespace: str) -> list[int]:
        """SIGKILL every process in ``namespace`` (a node's raylet, agents and workers)."""
        pids = self.pids(namespace)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.pids(namespace), 30, f"{namespace} to empty")
        return pids

    def teardown(self) -> list[str]:
        """Kill everything in the namespaces and delete them; what is left (nothing)."""
        for namespace in reversed(self.made):
            with contextlib.suppress(AssertionError):
                self.kill(namespace)
            _ip("netns", "del", namespace)
        forget_address(self.address)
        time.sleep(0.5)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [name for name in self.made if name in listed.split()]
