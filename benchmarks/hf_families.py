"""Sites found in 18 transformers families built from small configs (random weights), against
what their layer classes hold.

    python benchmarks/hf_families.py

Expected counts come from reading each family's layer code: a layer with self-attention holds
one attention and two residual adds (attention, MLP), one with cross-attention too holds three
and two; a parallel block (``x + attn(ln(x)) + mlp(ln(x))``: Phi, GPT-NeoX, Falcon) holds one
residual: its two branches share one shortcut. Norms expected: every norm-like module.
"""

from __future__ import annotations

import os
import time

import torch

from minsearch.models import build_model
from minsearch.models.hf import example_input
from minsearch.sites import find_sites
from minsearch.sites.classify import is_norm
from minsearch.surgery import apply_

SMALL = "vocab_size=100&hidden_size=32&intermediate_size=64&num_hidden_layers=2" \
        "&num_attention_heads=4"
FAMILIES = {  # name: (spec, residuals per layer, attentions per layer, layers)
    "GPT-2": ("hf:gpt2?vocab_size=100&n_embd=32&n_layer=2&n_head=4", 2, 1),
    "BERT": (f"hf:bert?{SMALL}", 2, 1),
    "RoBERTa": (f"hf:roberta?{SMALL}", 2, 1),
    "DistilBERT": ("hf:distilbert?vocab_size=100&dim=32&hidden_dim=64&n_layers=2&n_heads=4",
                   2, 1),
    "LLaMA": (f"hf:llama?{SMALL}&num_key_value_heads=2", 2, 1),
    "Mistral": (f"hf:mistral?{SMALL}&num_key_value_heads=2&sliding_window=8", 2, 1),
    "Qwen2": (f"hf:qwen2?{SMALL}&num_key_value_heads=2", 2, 1),
    "Phi-3": (f"hf:phi3?{SMALL}&num_key_value_heads=2&pad_token_id=0", 2, 1),
    "Phi": (f"hf:phi?{SMALL}", 1, 1),
    "Gemma": (f"hf:gemma?{SMALL}&num_key_value_heads=1&head_dim=8", 2, 1),
    "Gemma 2": (f"hf:gemma2?{SMALL}&num_key_value_heads=2&head_dim=8", 2, 1),
    "T5": ("hf:t5?vocab_size=100&d_model=32&d_ff=64&num_layers=2&num_decoder_layers=2"
           "&num_heads=4&d_kv=8", None, None),
    "ViT": ("hf:vit?hidden_size=32&num_hidden_layers=2&num_attention_heads=4"
            "&intermediate_size=64&image_size=16&patch_size=4", 2, 1),
    "Whisper": ("hf:whisper?vocab_size=100&d_model=32&encoder_layers=2&decoder_layers=2"
                "&encoder_attention_heads=4&decoder_attention_heads=4&encoder_ffn_dim=64"
                "&decoder_ffn_dim=64&pad_token_id=0&bos_token_id=1&eos_token_id=2"
                "&decoder_start_token_id=1&num_mel_bins=16&max_source_positions=16"
                "&max_target_positions=32", None, None),
    "OPT": ("hf:opt?vocab_size=100&hidden_size=32&ffn_dim=64&num_hidden_layers=2"
            "&num_attention_heads=4&word_embed_proj_dim=32", 2, 1),
    "GPT-NeoX": (f"hf:gpt_neox?{SMALL}", 1, 1),
    "Falcon": ("hf:falcon?vocab_size=100&hidden_size=32&num_hidden_layers=2"
               "&num_attention_heads=4", 1, 1),
    "Mixtral": (f"hf:mixtral?{SMALL}&num_key_value_heads=2&num_local_experts=2", 2, 1),
}
ENC_DEC = {"T5": (2, 3, 1, 2), "Whisper": (2, 3, 1, 2)}  # per enc/dec layer: res, res, att, att


def expected(name: str, per_layer_res, per_layer_att) -> tuple[int, int]:
    if name in ENC_DEC:
        enc_res, dec_res, enc_att, dec_att = ENC_DEC[name]
        return 2 * enc_res + 2 * dec_res, 2 * enc_att + 2 * dec_att
    return 2 * per_layer_res, 2 * per_layer_att


def survey() -> list[dict]:
    rows = []
    for name, (spec, res, att) in FAMILIES.items():
        torch.manual_seed(0)
        model = build_model(spec).eval()
        start = time.perf_counter()
        found = find_sites(model)
        seconds = time.perf_counter() - start
        want_res, want_att = expected(name, res, att)
        norms = sum(is_norm(m) for m in model.modules())
        lowp = {s.detail.impl for s in found.of_kind("attention")}
        ran = _runs(model, found)
        rows.append({"family": name, "norm": (len(found.of_kind("norm")), norms),
                     "residual": (len(found.of_kind("residual")), want_res),
                     "attention": (len(found.of_kind("attention")), want_att),
                     "impl": ",".join(sorted(lowp)), "int8 runs": ran, "seconds": seconds})
    return rows


def _runs(model, found) -> str:
    """Does attention -> int8 (and norm -> dyt) run on this family?"""
    import copy

    x = example_input(model)
    out = []
    for genome in ({"attention:*": "int8"}, {"norm:*": "dyt"}):
        candidate = copy.deepcopy(model)
        try:
            apply_(candidate, genome, discovery=found)
            with torch.no_grad():
                y = candidate(x)
            ok = bool(torch.isfinite(y).all()) and float(y.std()) > 0
            out.append("yes" if ok else "constant/non-finite")
        except Exception as err:  # noqa: BLE001 - a survey reports every failure
            out.append(f"no ({type(err).__name__})")
    return " / ".join(out)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    print("| family | norms found / expected | residuals | attention | attention impl | "
          "int8 / dyt run | find s |")
    print("|---|---|---|---|---|---|---|")
    for r in survey():
        cells = [f"{a} / {b}" for a, b in (r["norm"], r["residual"], r["attention"])]
        print(f"| {r['family']} | {' | '.join(cells)} | {r['impl']} | {r['int8 runs']} | "
              f"{r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
