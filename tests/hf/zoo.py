"""Tiny transformers models, one per family, built from their config classes with random
weights (no download), and what each must hold, counted from its layer classes."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = {"vocab_size": 100}
DECODER = {**SMALL, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}

CONFIGS: dict[str, tuple[str, dict]] = {
    # family: (model type, config overrides)
    "gpt2": ("gpt2", {**SMALL, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64,
                      "bos_token_id": 1, "eos_token_id": 2}),
    "bert": ("bert", {**SMALL, "hidden_size": 32, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "intermediate_size": 64,
                      "max_position_embeddings": 64}),
    "llama": ("llama", DECODER),
    "mistral": ("mistral", {**DECODER, "sliding_window": 4}),
    "qwen2": ("qwen2", DECODER),
    "gemma": ("gemma", {**DECODER, "head_dim": 8}),
    "t5": ("t5", {**SMALL, "d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2,
                  "num_heads": 4, "d_kv": 8, "decoder_start_token_id": 0, "pad_token_id": 0,
                  "eos_token_id": 1}),
    "vit": ("vit", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 64, "image_size": 16, "patch_size": 4,
                    "num_labels": 10}),
    "whisper": ("whisper", {**SMALL, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
                            "encoder_attention_heads": 4, "decoder_attention_heads": 4,
                            "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "pad_token_id": 0,
                            "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1,
                            "num_mel_bins": 16, "max_source_positions": 16,
                            "max_target_positions": 32}),
}
FAMILIES = tuple(CONFIGS)
GENERATES = ("gpt2", "llama", "mistral", "qwen2", "gemma", "t5", "whisper")


def spec(family: str) -> str:
    model_type, overrides = CONFIGS[family]
    return f"hf:{model_type}?" + "&".join(f"{k}={v}" for k, v in overrides.items())


def tiny(family: str = "llama"):
    """A factory (``tests.hf.zoo:tiny?family=bert``): the transformers model itself."""
    import transformers

    model_type, overrides = CONFIGS[family]
    config = transformers.AutoConfig.for_model(model_type, **overrides)
    from minsearch.models.hf import auto_class_for

    return auto_class_for(transformers, config, None).from_config(config)


@dataclass(frozen=True)
class Expected:
    residuals: int
    attention: int


def expected(model) -> Expected:
    """Residual adds and attention modules, counted from the layer classes: a self-attention
    layer holds 2 residuals and 1 attention, a layer with cross-attention 3 and 2."""
    residuals = attention = 0
    for module in model.modules():
        name = type(module).__name__
        if name in ("T5Block", "WhisperDecoderLayer", "WhisperEncoderLayer", "GPT2Block",
                    "BertLayer", "ViTLayer") or name.endswith("DecoderLayer"):
            cross = name == "WhisperDecoderLayer" or (name == "T5Block" and module.is_decoder)
            residuals += 3 if cross else 2
            attention += 2 if cross else 1
    return Expected(residuals, attention)
