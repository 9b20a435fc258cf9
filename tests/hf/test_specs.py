"""``hf:`` model specs: a model type from its config class with overrides, a local folder, the
auto class; the model's forward and ModelOutput handled by minsearch; one clear error for a
spec that cannot be built; ``minsearch genes`` on transformers models."""

from __future__ import annotations

import json

import pytest
import torch

from minsearch.cli.main import main
from minsearch.errors import UserError
from minsearch.models import build_model, default_input_dtype, default_input_shape
from minsearch.models.hf import TensorForward, example_input
from tests.hf.zoo import spec, tiny

LLAMA = "hf:llama?vocab_size=100&hidden_size=32&intermediate_size=64&num_hidden_layers=2" \
        "&num_attention_heads=4&num_key_value_heads=2"


def test_a_model_type_with_config_overrides_is_built_with_random_weights():
    model = build_model(LLAMA)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.config.head_dim == 8  # derived values follow the overrides
    x = torch.randint(0, 100, (2, 7))
    logits = model(x)  # minsearch's call: the main input in, a tensor out
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7, 100)
    out = model(input_ids=x)  # transformers' own call still returns its ModelOutput
    torch.testing.assert_close(out.logits, logits)


@pytest.mark.parametrize("family, main_input, shape", [
    ("vit", "pixel_values", (1, 3, 16, 16)), ("whisper", "input_features", (1, 16, 32)),
    ("t5", "input_ids", (1, 16)), ("bert", "input_ids", (1, 16))])
def test_each_family_takes_its_main_input(family, main_input, shape):
    assert default_input_shape(spec(family)) == shape
    assert default_input_dtype(spec(family)) == (torch.int64 if main_input == "input_ids"
                                                 else torch.float32)
    model = build_model(spec(family)).eval()
    assert model.main_input_name == main_input
    out = model(example_input(model))
    assert isinstance(out, torch.Tensor) and out.shape[0] == 2


def test_auto_class_can_be_named():
    model = build_model(LLAMA + "&auto=AutoModel")
    assert type(model).__name__ == "LlamaModel"
    assert model(torch.randint(0, 100, (1, 5))).shape == (1, 5, 32)  # last_hidden_state


def test_a_local_folder_loads_its_weights(tmp_path):
    source = tiny("gpt2")
    source.save_pretrained(tmp_path)
    loaded = build_model(f"hf:{tmp_path}")
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    meta = build_model(f"hf:{tmp_path}?n_layer=1", device="meta")  # config only, no weights
    assert meta.config.n_layer == 1 and next(meta.parameters()).is_meta


def test_a_factory_returning_a_transformers_model_is_adapted_too():
    model = build_model("tests.hf.zoo:tiny?family=qwen2")
    assert isinstance(model.__dict__["forward"], TensorForward)
    assert model(torch.randint(0, 100, (1, 4))).shape == (1, 4, 100)


@pytest.mark.parametrize("text, message", [
    ("hf:llama?hiden_size=64", "LlamaConfig has no key 'hiden_size'. Did you mean hidden_size"),
    ("hf:lama", "not a transformers model type (e.g. hf:llama) and not in the local Hugging "
                "Face cache; minsearch never downloads. Close model types: llama"),
    ("hf:llama?auto=LlamaForCausalLM", "auto='LlamaForCausalLM' is not a transformers auto"),
    ("hf:", "names no model"),
])
def test_a_spec_that_cannot_be_built_is_one_clear_error(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(text, device="meta")


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="has no config.json"):
        build_model(f"hf:{tmp_path}")


def test_genes_lists_a_transformers_model(capsys):
    assert main(["genes", LLAMA, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [1, 16]
    kinds = [s["kind"] for s in data["sites"]]
    assert kinds.count("residual") == 4 and kinds.count("attention") == 2
    assert kinds.count("norm") == 5 and kinds.count("pair") == 4
    names = {s["name"] for s in data["sites"]}
    assert {"model.layers.1.residual_0", "model.layers.0.self_attn",
            "model.layers.1.pair_1"} <= names


def test_genes_takes_token_ids_for_a_factory_model(capsys):
    assert main(["genes", "tests.zoo:gpt?n_layer=2", "--input-shape", "2,8",
                 "--input-dtype", "int64", "--json"]) == 0
    residuals = [s for s in json.loads(capsys.readouterr().out)["sites"]
                 if s["kind"] == "residual"]
    assert residuals and all(s["detail"]["shape"] is not None for s in residuals)
