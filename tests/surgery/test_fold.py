"""Norm-free inference: frozen norms fold into linear layers; gradual freezing trains."""

import timm
import torch
from torch import nn

from minsearch.sites import find_sites
from minsearch.surgery import apply_
from minsearch.surgery.fold import fold_norms_
from minsearch.surgery.ln_free import remove_norms_
from tests import zoo

NORMS = (nn.LayerNorm, nn.BatchNorm2d, nn.RMSNorm)


def frozen_and_calibrated(model, x):
    apply_(model, {"norm:*": "frozen"})
    model.train()(x)  # first batch calibrates each frozen LayerNorm's sigma
    return model.eval()


def assert_no_norm_left(model):
    names = [type(m).__name__ for m in model.modules()]
    assert not any("Norm" in n for n in names), names
    assert find_sites(model).of_kind("norm") == []


def test_gpt_folds_every_layernorm_and_matches_frozen_output():
    torch.manual_seed(0)
    x = torch.randint(0, 32, (4, 16))
    model = frozen_and_calibrated(zoo.GPT(), x)
    ref = model(x)
    folds = fold_norms_(model)
    assert [f.norm for f in folds] == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    assert folds[0].into == ("h.0.attn.c_attn",) and folds[-1].into == ("lm_head",)
    assert_no_norm_left(model)
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_vit_folds_through_timm_attention_and_token_pooling():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model = frozen_and_calibrated(
        timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=10), x)
    ref = model(x)
    folds = fold_norms_(model)
    assert all(f.folded for f in folds), [f for f in folds if not f.folded]
    assert ("blocks.0.attn.qkv",) in {f.into for f in folds} and ("head",) in {f.into
                                                                           for f in folds}
    assert_no_norm_left(model)
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_batchnorm_folds_into_the_conv_before_it():
    model = timm.create_model("resnet18", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    model = frozen_and_calibrated(model, x)
    ref = model(x)
    assert all(f.folded for f in fold_norms_(model))
    assert_no_norm_left(model)
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_uncalibrated_or_unfoldable_norms_are_reported_not_folded():
    model = zoo.GPT()
    apply_(model, {"norm:*": "frozen"})
    folds = fold_norms_(model.eval())
    assert not any(f.folded for f in folds)
    assert all("calibrated" in f.reason for f in folds)


def test_remove_norms_one_at_a_time_then_fold():
    torch.manual_seed(0)
    x = torch.randint(0, 32, (8, 16))
    model = zoo.GPT()
    seen = []

    def train_steps(m, n):
        frozen = sum("Frozen" in type(mod).__name__ for mod in m.modules())
        seen.append(frozen)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        for _ in range(n):
            logits = m(x[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, 32), x[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = remove_norms_(model, train_steps, steps_per_norm=2)
    assert seen == [1, 2, 3, 4, 5]  # one more norm frozen before each fine-tune
    assert report.frozen == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    assert report.remaining == []
    assert_no_norm_left(model)
    assert torch.isfinite(model(x)).all()
