"""Fixtures for the search tests: a task small enough that a trial takes about a second."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

VIT = ("timm:vit_tiny_patch16_224?img_size=8&patch_size=2&in_chans=1&num_classes=10"
       "&embed_dim=32&depth=2&num_heads=2")

TINY_TASK = {
    "name": "tiny",
    "model": VIT,
    "dataset": "digits",
    "max_samples": 600,
    "init": "parent",
    "parent_epochs": 20,  # about 2 s: a parent at ~0.78 accuracy, so robustness is not 0
    "batch_size": 32,
    "epochs": 1,
    "objectives": ["accuracy", "param_bytes", "latency_ms", "peak_mem_infer_bytes",
                   "robustness"],
    "max_accuracy_drop": 0.5,
    "latency_runs": 3,
    "latency_warmup": 1,
    "corruptions": ["gaussian_noise", "blur"],
    "severities": [1, 3],
    "cpus_per_trial": 1,
    "max_concurrent": 2,
}

TINY_SPACE = {
    "sampler": "nsga2",
    "trials": 5,
    "seed": 0,
    "population": 4,
    "genes": [
        {"kind": "norm", "tie": "kind", "options": ["keep", "identity", "dyt"]},
        {"kind": "residual", "tie": "kind", "options": ["keep", "rezero", "layerscale"]},
    ],
}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "task.yaml", TINY_TASK)


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "space.yaml", TINY_SPACE)


ROOT = Path(__file__).resolve().parents[2]


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


class Drivers:
    """Starts ``minsearch`` commands, each in its own session; ends leftovers on teardown."""

    def __init__(self, log_dir: Path | None = None) -> None:
        import tempfile

        self.sessions: list[int] = []
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="minsearch-test-"))

    def start(self, *args: str, env: dict | None = None, log: Path | None = None):
        import os
        import subprocess
        import sys

        full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "minsearch.cli.main", *args], cwd=ROOT,
                                env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.sessions.append(proc.pid)
        return proc

    def run(self, *args: str, env: dict | None = None, timeout: float = 400):
        import subprocess

        log = self.log_dir / f"command-{len(self.sessions)}.log"
        proc = self.start(*args, env=env, log=log)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        return proc.returncode, log.read_text()

    def cleanup(self) -> list[int]:
        import os
        import signal

        left = [pid for sid in self.sessions for pid in session_processes(sid)]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return left


@pytest.fixture
def drivers(tmp_path):
    d = Drivers(tmp_path)
    yield d
    d.cleanup()


def listening_addresses(pids: list[int]) -> set[str]:
    """Local IPv4/IPv6 addresses of TCP sockets in LISTEN state owned by ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = str(fd.readlink()) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                found.add(_address(fields[1].split(":")[0], width))
    return found


def _address(hex_ip: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_ip)
    if width == 8:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)
