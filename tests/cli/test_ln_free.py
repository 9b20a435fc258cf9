"""`minsearch ln-free`: a task's model with every norm frozen, folded and exported."""

from pathlib import Path

import torch
import yaml

from minsearch.cli.main import main
from minsearch.sites import find_sites
from minsearch.tasks.candidate import load_candidate

ROOT = Path(__file__).resolve().parents[2]


def test_ln_free_exports_a_model_without_norms(tmp_path, capsys):
    task = yaml.safe_load((ROOT / "tasks" / "digits_cnn.yaml").read_text())
    task.update(parent_epochs=1, epochs=1, max_samples=400)  # the export, not the accuracy
    task_file = tmp_path / "task.yaml"
    task_file.write_text(yaml.safe_dump(task))
    out = tmp_path / "norm_free.pt"
    assert main(["ln-free", str(task_file), "--steps-per-norm", "1", "--out", str(out),
                 "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy: parent" in printed and "0 left" in printed

    model = load_candidate(out)
    assert not [m for m in model.modules() if "Norm" in type(m).__name__]
    assert find_sites(model).of_kind("norm") == []
    blob = torch.load(out, weights_only=True)
    x = torch.randn(4, *blob["input_shape"][1:])
    assert torch.isfinite(model(x)).all()
    assert blob["norm_free"]["remaining"] == []
