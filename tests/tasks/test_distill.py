"""Knowledge distillation from the parent: Hinton's loss, and a student that follows it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minsearch.errors import UserError
from minsearch.tasks.config import DistillConfig, RecipeConfig, TaskConfig
from minsearch.tasks.distill import build_teacher, distill_loss
from minsearch.tasks.train import evaluate, fit
from minsearch.tasks.trainer import Trainer
from tests.tasks.factories import TinyMLP


@pytest.mark.parametrize("shape", [(6, 10), (3, 5, 7)], ids=["image", "text"])
def test_distill_loss_is_hintons_by_hand_with_its_gradient(shape):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(shape, generator=g, requires_grad=True)
    teacher = torch.randn(shape, generator=g) * 3
    hard = torch.tensor(1.7)
    cfg = DistillConfig(weight=0.3, temperature=2.5)
    got = distill_loss(student, teacher, hard, cfg)
    p_t = torch.softmax(teacher / 2.5, dim=-1)  # per row of the last dim, averaged over rows
    kl = (p_t * (p_t.log() - torch.log_softmax(student / 2.5, dim=-1))).sum(-1).mean()
    want = 0.7 * hard + 0.3 * 2.5 ** 2 * kl
    torch.testing.assert_close(got, want)
    grad_got, = torch.autograd.grad(got, student)
    grad_want, = torch.autograd.grad(want, student)
    torch.testing.assert_close(grad_got, grad_want)
    assert grad_got.abs().sum() > 0


class Shifted(nn.Module):
    """A teacher that is confidently wrong in a learnable way: it predicts class ``y + 1``
    where the trained ``model`` predicts ``y``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).roll(1, dims=-1)


@pytest.fixture(scope="module")
def shifted_teacher(digits):
    torch.manual_seed(0)
    model = TinyMLP()
    fit(model, digits, RecipeConfig(lr=1e-2), epochs=3)
    return Shifted(model).eval().requires_grad_(False)


def agreement(model, teacher, data) -> float:
    x, _ = data.examples(data.test, len(data.test))
    with torch.no_grad():
        return float((model.eval()(x).argmax(-1) == teacher(x).argmax(-1)).float().mean())


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_distillation_makes_the_student_follow_the_teacher(digits, shifted_teacher, weight):
    """weight 1: the student learns the teacher's (shifted) answers, not the labels; weight
    0: the labels. Ignoring the distillation term fails the weight-1 case."""
    torch.manual_seed(1)
    student = TinyMLP()
    recipe = RecipeConfig(lr=1e-2, epochs=3, distill={"weight": weight, "temperature": 2.0})
    trainer = Trainer(student, digits, recipe, teacher=shifted_teacher)
    for r in range(trainer.budget.rounds):
        trainer.train_round(r)
    accuracy = evaluate(student, digits, digits.test)
    follows = agreement(student, shifted_teacher, digits)
    if weight == 1.0:
        assert follows > 0.8 and accuracy < 0.2
    else:
        assert accuracy > 0.8 and follows < 0.2


def test_weight_zero_never_runs_the_teacher(digits):
    calls = []
    teacher = TinyMLP()
    teacher.register_forward_hook(lambda *a: calls.append(1))
    recipe = RecipeConfig(steps=2, distill={"weight": 0.0})
    trainer = Trainer(TinyMLP(), digits, recipe, teacher=teacher)
    trainer.train_round(0)
    assert not calls
    Trainer(TinyMLP(), digits, recipe.replace(distill={"weight": 0.5}),
            teacher=teacher).train_round(0)
    assert calls


def test_the_teacher_is_the_unmodified_parent_frozen(digits):
    task = TaskConfig.from_flat({"model": "tests.tasks.factories:tiny_mlp",
                                 "distill": {"weight": 0.5}})
    parent = TinyMLP()
    teacher = build_teacher(task, parent.state_dict())
    x, _ = digits.examples(digits.test, 4)
    torch.testing.assert_close(teacher(x), parent.eval()(x))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(UserError, match="needs the parent's weights"):
        build_teacher(task, None)


def test_ce_part_keeps_label_smoothing(digits):
    """weight 0.25: three quarters of the label loss (with its smoothing) stay in the loss."""
    teacher, student = TinyMLP(), TinyMLP()
    recipe = RecipeConfig(label_smoothing=0.1, distill={"weight": 0.25, "temperature": 1.0})
    trainer = Trainer(student, digits, recipe, teacher=teacher)
    x, y = digits.examples(digits.train, 16)
    with torch.no_grad():
        got = trainer.loss(x, y)
        s, t = student(x), teacher(x)
        kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="batchmean",
                      log_target=True)
        want = 0.75 * F.cross_entropy(s, y, label_smoothing=0.1) + 0.25 * kl
    torch.testing.assert_close(got, want)
