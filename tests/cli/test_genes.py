"""`minsearch genes`: the table, the JSON, and one-line errors with a non-zero exit."""

import json

import pytest

from minsearch.cli.main import main


def test_json_lists_every_site(capsys):
    assert main(["genes", "timm:resnet18?num_classes=10", "--input-shape", "1,3,32,32",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    residuals = [s for s in data["sites"] if s["kind"] == "residual"]
    assert len(residuals) == 8
    assert {"name", "kind", "options"} <= set(residuals[0])
    assert residuals[0]["options"][0] == "keep"


def test_table_groups_by_kind_with_counts(capsys):
    assert main(["genes", "timm:vit_tiny_patch16_224?img_size=32&num_classes=10"]) == 0
    out = capsys.readouterr().out
    assert "residual (24)" in out and "attention (12)" in out and "blocks.3.residual_1" in out


def test_factory_model_spec(capsys):
    assert main(["genes", "tests.zoo:gpt?n_layer=3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(s["kind"] == "residual" for s in data["sites"]) == 6


def test_plugin_kind_is_listed(capsys):
    assert main(["genes", "timm:vit_tiny_patch16_224?img_size=32&num_classes=10&depth=1",
                 "--plugin", "tests.plugins.dropout_kind"]) == 0
    out = capsys.readouterr().out
    assert "dropout (" in out and "blocks.0.mlp.drop1" in out and "keep identity" in out
    assert "attn.attn_drop" not in out  # timm's attention reads its `p`: not a dropout site


@pytest.mark.parametrize("args, message", [
    (["timm:resnet18", "--plugin", "no_such.plugin"], "Plugin 'no_such.plugin' cannot be"),
    (["timm:resnet1"], "Unknown timm model 'resnet1'. Close matches: resnet18"),
    (["nowhere.module:make"], "Cannot import module 'nowhere.module'"),
    (["tests.zoo:nothing"], "has no callable 'nothing'"),
    (["timm:resnet18", "--input-shape", "1,x,3"], "must be positive integers"),
    (["timm:resnet18", "--input-shape", "1,3"], "does not fit the model"),
    (["timm:resnet18?depth"], "must look like key=value"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(["genes", *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minsearch genes: error: "), err
    assert message in lines[0] and "Traceback" not in err, err
