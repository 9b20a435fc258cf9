"""The import layers of ``pyproject.toml`` (``[tool.importlinter]``) hold: no package imports
one above it. ``lint-imports`` is import-linter's command, run from this interpreter's venv."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_package_imports_a_layer_above_it():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} is missing: install the test extra (pip install -e '.[test]')"
    proc = subprocess.run([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
