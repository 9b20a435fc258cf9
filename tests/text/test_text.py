"""Char corpus, char GPT and language-model metrics."""

import pytest
import torch

from minsearch.errors import UserError
from minsearch.sites import find_sites
from minsearch.text.corpus import VOCAB_SIZE, decode, encode, load_corpus
from minsearch.text.gpt import char_gpt
from minsearch.text.metrics import add_char_noise, lm_metrics


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(max_chars=200_000, seed=0)


def test_default_corpus_is_the_standard_library_split_by_file(corpus):
    assert corpus.files > 3
    assert min(len(corpus.train), len(corpus.val), len(corpus.test)) > 1000
    assert int(corpus.train.max()) < VOCAB_SIZE
    again = load_corpus(max_chars=200_000, seed=0)
    assert torch.equal(again.val, corpus.val)  # deterministic
    other = load_corpus(max_chars=200_000, seed=1)
    assert not torch.equal(other.train[:1000], corpus.train[:1000])


def test_encode_maps_non_ascii_to_question_mark():
    assert decode(encode("héllo\n")) == "h?llo\n"


def test_corpus_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "a.txt").write_text("abc")
    with pytest.raises(UserError, match="No text"):
        load_corpus(tmp_path, pattern="*.md")


def test_char_gpt_has_the_sites_of_a_pre_norm_transformer():
    model = char_gpt(n_layer=3, n_embd=32, n_head=4, block_size=16)
    d = find_sites(model, torch.zeros(1, 16, dtype=torch.long))
    counts = d.counts()
    assert counts["residual"] == 6 and counts["pair"] == 6 and counts["attention"] == 3
    assert counts["norm"] == 7


def test_lm_metrics(corpus):
    torch.manual_seed(0)
    model = char_gpt(n_layer=1, n_embd=16, n_head=2, block_size=16)
    windows = corpus.windows("val", 16, count=32)
    assert windows.shape == (32, 17)
    metrics = lm_metrics(model, windows)
    uniform = torch.log(torch.tensor(float(VOCAB_SIZE))).item()
    assert abs(metrics["loss"] - uniform) < 0.5  # an untrained model is near uniform
    assert metrics["loss_p99"] >= metrics["loss"]
    noisy = add_char_noise(windows, 0.5)
    assert (noisy[:, :-1] != windows[:, :-1]).float().mean() > 0.3
    assert torch.equal(noisy[:, -1], windows[:, -1])
