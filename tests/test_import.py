"""`import minsearch` stays light: no torch, ray or mlflow until something needs them."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_import_minsearch_is_light():
    loaded = _modules_after("import minsearch")
    assert not {"torch", "ray", "mlflow", "optuna", "timm"} & loaded


def test_surgery_does_not_import_ray_or_mlflow():
    loaded = _modules_after("import minsearch\nminsearch.apply_\nminsearch.find_sites")
    assert "torch" in loaded
    assert not {"ray", "mlflow", "optuna"} & loaded


def test_import_time_is_small():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import minsearch"],
                         capture_output=True, text=True, check=True).stderr
    total_us = int(out.strip().splitlines()[-1].split("|")[1])  # cumulative time of minsearch
    assert total_us < 200_000
