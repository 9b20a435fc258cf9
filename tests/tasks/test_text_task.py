"""The char-level language-model task: config, data, LM objectives, candidates on char codes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from minsearch.errors import UserError
from minsearch.objectives import (
    MeasureContext,
    check_task,
    get_objective,
    measure_all,
    objective_names,
)
from minsearch.objectives.constraint import directions
from minsearch.objectives.loss import example_losses
from minsearch.tasks.candidate import (
    build_candidate,
    example_input,
    export_blob,
    load_candidate,
    load_or_train_parent,
    parent_key,
)
from minsearch.tasks.config import TEXT_DEFAULTS, TaskConfig, load_task
from minsearch.tasks.data import load_data
from minsearch.tasks.train import check_outputs, evaluate, fit
from minsearch.text.corpus import VOCAB_SIZE, decode
from minsearch.text.metrics import lm_metrics

ROOT = Path(__file__).resolve().parents[2]
GPT = "minsearch.text.gpt:char_gpt?block_size=16&n_embd=32&n_head=2&n_layer=2"
LM = ["loss", "loss_p99", "noisy_loss"]
SMALL = {"model": GPT, "dataset": "text", "max_chars": 40_000, "block_size": 16,
         "split": [0.8, 0.1, 0.1], "eval_windows": 48, "epoch_batches": 15, "batch_size": 16,
         "parent_epochs": 4, "epochs": 1, "objectives": LM, "latency_runs": 3,
         "latency_warmup": 1, "memory_batch": 8}


def small(**changes) -> TaskConfig:
    return TaskConfig.from_flat({**SMALL, **changes})


@pytest.fixture(scope="module")
def text():
    return load_data(small().data)


@pytest.fixture(scope="module")
def parent(text, tmp_path_factory):
    """The small task's parent, trained once (4 x 15 steps): a model that uses its context."""
    return load_or_train_parent(small(), text, tmp_path_factory.mktemp("parent"))


# ------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("flat, message", [
    ({"model": GPT, "block_size": 16}, "`block_size` apply to `dataset: text` only"),
    ({"model": GPT, "dataset": "txt"}, "one of digits, imagefolder, text"),
    ({**SMALL, "split": [0.9, 0.0, 0.1]}, "needs a val and a test range"),
    ({**SMALL, "max_chars": 10}, "`max_chars` must be an int >= 1000, but got 10"),
    ({**SMALL, "block_size": 1}, "`block_size` must be an int >= 2"),
    ({**SMALL, "epoch_batches": 0}, "`epoch_batches` must be an int >= 1"),
    ({**SMALL, "file_pattern": ""}, "`file_pattern` must be a glob"),
    ({**SMALL, "image_size": 8}, "no use for `image_size`"),
    ({**SMALL, "objectives": ["param_bytes", "loss"], "max_loss_increase": 0.1},
     "needs `loss` first"),
    ({**SMALL, "max_loss_increase": -0.1}, "`max_loss_increase` .* must be >= 0"),
    ({**SMALL, "noise_rate": 1.5}, "`noise_rate` is a fraction"),
])
def test_text_task_mistakes_state_the_rule_and_value(flat, message):
    with pytest.raises(UserError, match=message):
        TaskConfig.from_flat(flat)


def test_image_objectives_on_text_are_refused_by_the_registry_check():
    task = small(objectives=["loss", "robustness"])  # a valid config: the names are not its job
    with pytest.raises(UserError, match=r"\['robustness'\] do not measure text"):
        check_task(task)


def test_text_keys_default_and_round_trip():
    task = TaskConfig.from_flat({"model": GPT, "dataset": "text", "objectives": LM})
    assert {k: getattr(task.data, k) for k in TEXT_DEFAULTS} == TEXT_DEFAULTS
    assert task.data.kind == "text" and TaskConfig.from_flat(task.to_flat()) == task
    assert directions(task.measure.objectives) == {"loss": "min", "loss_p99": "min",
                                                   "noisy_loss": "min"}
    assert small(max_loss_increase=0.05).measure.max_worsening == 0.05
    assert small().measure.max_worsening is None


def test_parent_key_follows_the_text_settings():
    assert parent_key(small(block_size=8)) != parent_key(small())
    assert parent_key(small(max_chars=30_000)) != parent_key(small())
    assert parent_key(small(epochs=3)) == parent_key(small())


def test_shipped_char_gpt_task():
    task = load_task(ROOT / "tasks" / "char_gpt.yaml")
    assert task.data.kind == "text" and task.measure.objectives[:3] == tuple(LM)
    assert task.measure.max_loss_increase == 0.05 and task.measure.max_worsening == 0.05
    assert {"param_bytes", "latency_ms", "peak_mem_infer_bytes"} <= set(task.measure.objectives)
    check_task(task)


# -------------------------------------------------------------------------------------- data

def test_text_data_is_deterministic_and_shaped_for_next_char_prediction(text):
    again = load_data(small().data)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).windows, getattr(text, name).windows)
    assert not torch.equal(load_data(small(data_seed=1).data).test.ids[:500], text.test.ids[:500])
    assert text.kind == "text" and text.input_shape == (16,) and text.num_classes == VOCAB_SIZE
    assert len(text.test) == 48 and text.test.windows.shape == (48, 17)
    epoch = list(text.batches(text.train, 16, generator=torch.Generator().manual_seed(3)))
    assert len(epoch) == 15  # an epoch is epoch_batches random batches
    x, y = epoch[0]
    assert x.shape == y.shape == (16, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one char
    same = next(text.batches(text.train, 16, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(same[0], x)
    evaluation = list(text.batches(text.test, 20))
    assert [len(b[0]) for b in evaluation] == [20, 20, 8]  # the fixed windows, in order
    assert torch.equal(evaluation[0][0], text.test.windows[:20, :-1])


def test_a_folder_of_text_files_is_a_corpus(tmp_path):
    (tmp_path / "a.txt").write_text("hello world, " * 200)  # 2600 characters
    (tmp_path / "b.txt").write_text("héllo again " * 250)  # 3000
    (tmp_path / "c.py").write_text("not me " * 400)
    data = load_data(small(data_root=str(tmp_path), file_pattern="*.txt", max_chars=5000).data)
    whole = decode(torch.cat([data.train.ids, data.val.ids, data.test.ids]))
    assert len(whole) == 5000 + 1 and "not me" not in whole  # two files joined by "\n"
    assert set(whole) <= set("helo wrd,agin?\n")  # non-ASCII reads as '?'


def test_examples_and_noise(text):
    x, y = text.examples(text.test, 50)  # more than the 48 windows: cycled
    assert x.shape == (50, 16) and torch.equal(x[48], x[0])
    assert torch.equal(example_input(text, 2), text.train.windows[:2, :-1])
    noisy = text.noise(0.5, torch.Generator().manual_seed(0))(x)
    changed = noisy != x
    assert 0.3 < changed.float().mean() < 0.6
    assert noisy[changed].min() >= 32 and noisy[changed].max() < 127  # printable characters
    assert torch.equal(text.noise(0.0, torch.Generator())(x), x)


# -------------------------------------------------------------------------------- objectives

def test_every_objective_for_text_measures_a_finite_value(text, parent):
    names = [n for n in objective_names() if "text" in get_objective(n).kinds]
    assert set(LM) <= set(names) and "robustness" not in names
    task = small(objectives=names)
    model, _ = build_candidate(task, {}, text, parent_state=parent[0])
    values, extras = measure_all(model, text, task, torch.device("cpu"))
    assert list(values) == names and extras == {}
    assert all(math.isfinite(v) for v in values.values())


def test_lm_objectives_are_the_lm_metrics_and_ordered(text, parent):
    task = small()
    model, _ = build_candidate(task, {}, text, parent_state=parent[0])
    values, _ = measure_all(model, text, task, torch.device("cpu"))
    reference = lm_metrics(model, text.test.windows)
    assert values["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert values["loss_p99"] == pytest.approx(reference["loss_p99"], rel=1e-5)
    assert values["loss_p99"] >= values["loss"]  # the tail is above the mean
    assert values["loss"] < math.log(VOCAB_SIZE) - 1.0  # the parent learned something
    assert values["noisy_loss"] > values["loss"]  # it reads its context: noise costs
    # only inputs are noised: with no noise the noisy loss is the clean loss
    clean = measure_all(model, text, small(noise_rate=0.0), torch.device("cpu"))[0]
    assert clean["noisy_loss"] == pytest.approx(values["loss"], rel=1e-6)


def test_untrained_model_is_near_uniform_and_next_char_accuracy_is_a_fraction(text):
    torch.manual_seed(0)
    model, _ = build_candidate(small(), {}, text)
    losses = example_losses(model, text, text.test, device="cpu")
    assert losses.shape == (48,)
    assert abs(float(losses.mean()) - math.log(VOCAB_SIZE)) < 0.5
    assert 0.0 <= evaluate(model, text, text.val) < 0.2


# ------------------------------------------------------------------------ candidates, export

def test_candidate_on_char_codes_trains_and_keeps_the_parents_weights(text, parent):
    state, info = parent
    assert info["epochs"] == 4 and 0.0 < info["val_accuracy"] <= 1.0
    task = small()
    model, genome = build_candidate(task, {"pair:h\\.\\d+\\.pair_1": "agu",
                                           "norm:h\\.\\d+\\.ln_1": "dyt"}, text,
                                    parent_state=state)
    assert set(genome) == {"h.0.pair_1", "h.1.pair_1", "h.0.ln_1", "h.1.ln_1"}
    assert torch.equal(model.h[0].attn.c_attn.weight, state["h.0.attn.c_attn.weight"])
    curves = fit(model, text, task.recipe, epochs=1)
    assert len(curves) == 1 and math.isfinite(curves[0]["train_loss"])
    values, _ = measure_all(model, text, task, torch.device("cpu"))
    assert all(math.isfinite(v) for v in values.values())



def test_distillation_matches_the_parent_position_by_position(text, parent):
    """Logits (B, T, vocab): the KL pairs the student's and the teacher's logits at each
    position. The parent as its own student has none; the teacher shifted by one position
    gives a large one; and a candidate trains with it."""
    from minsearch.tasks.distill import build_teacher
    from minsearch.tasks.trainer import Trainer

    state, _ = parent
    task = small(distill={"weight": 1.0, "temperature": 2.0})
    teacher = build_teacher(task, state)
    student, _ = build_candidate(task, {}, text, parent_state=state)
    x, y = next(text.batches(text.train, 8, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        same = Trainer(student.eval(), text, task.recipe, teacher=teacher).loss(x, y)
        shifted = Trainer(student, text, task.recipe,
                          teacher=lambda inputs: teacher(inputs).roll(1, dims=1)).loss(x, y)
    assert float(same) == pytest.approx(0.0, abs=1e-5) and float(shifted) > 0.1
    curves = fit(student, text, task.recipe, epochs=1, teacher=teacher)
    assert math.isfinite(curves[0]["train_loss"])

@pytest.mark.parametrize("args", ["&vocab_size=64", "&block_size=8"])
def test_a_model_that_does_not_fit_the_text_is_explained(text, args):
    from minsearch.models import build_model

    with pytest.raises(UserError, match=r"fails on a batch .* '\?vocab_size=128'"):
        check_outputs(build_model(GPT + args), text)
    with pytest.raises(UserError, match=r"needs \(2, 16, 128\)"):
        check_outputs(build_model(GPT.replace("block_size=16", "block_size=32")
                                  + "&vocab_size=130"), text)


def test_export_round_trip_on_char_codes(tmp_path, text):
    model, genome = build_candidate(small(), {"pair:h\\.0\\.pair_1": "agu"}, text)
    blob = export_blob(GPT, genome, model.state_dict(), (1, *text.input_shape),
                       str(text.input_dtype).removeprefix("torch."))
    torch.save(blob, tmp_path / "lm.pt")
    loaded = load_candidate(tmp_path / "lm.pt")
    x, _ = text.examples(text.test, 4)
    assert torch.allclose(loaded(x), model.eval()(x))
    blob["input_dtype"] = "load"
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="not a torch dtype"):
        load_candidate(tmp_path / "bad.pt")


def test_image_objectives_measure_digits_and_loss_applies_there_too(digits):
    """The loss objectives are kind-generic: on digits they are nats per image."""
    from tests.tasks.factories import TinyMLP

    task = TaskConfig.from_flat({"model": "tests.tasks.factories:tiny_mlp",
                                 "objectives": ["accuracy", "loss", "noisy_loss"]})
    torch.manual_seed(0)
    model = TinyMLP()
    fit(model, digits, task.recipe, epochs=2)
    ctx = MeasureContext(model.eval(), digits, task, torch.device("cpu"))
    loss = get_objective("loss").measure(ctx)
    assert 0 < loss < math.log(10) and get_objective("noisy_loss").measure(ctx) > loss
