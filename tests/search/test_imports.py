"""Heavy dependencies stay at the edges: Ray only in the controller/trainable modules,
MLflow only in minsearch.tracking, and the CLI modules import nothing heavy until run. The
plugin loader imports nothing of minsearch but its errors."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_no_ray_or_mlflow_outside_the_search_edges():
    modules = ", ".join(["minsearch.search.space", "minsearch.search.plan",
                         "minsearch.search.results", "minsearch.search.export",
                         "minsearch.search.report", "minsearch.search.run_dir",
                         "minsearch.search.samplers", "minsearch.search.hooks",
                         "minsearch.plugins", "minsearch.pareto", "minsearch.tasks.candidate",
                         "minsearch.objectives"])
    assert not {"ray", "mlflow"} & loaded_after(f"import {modules}")


def test_cli_modules_import_nothing_heavy():
    modules = ", ".join(f"minsearch.cli.{m}" for m in
                        ("search", "resume", "front", "report", "export", "ui", "validate"))
    assert not {"torch", "ray", "mlflow", "optuna", "pandas"} & loaded_after(f"import {modules}")


def test_the_plugin_loader_is_a_bottom_layer():
    out = subprocess.run([sys.executable, "-c", "import sys, minsearch.plugins; print(' '.join("
                          "m for m in sys.modules if m.startswith('minsearch')))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert set(out) == {"minsearch", "minsearch.plugins", "minsearch.errors"}
