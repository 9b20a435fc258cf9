"""Knowledge distillation from the parent (Hinton et al., "Distilling the Knowledge in a
Neural Network", 2015).

A candidate is the parent with parts removed or replaced; the unmodified parent, trained, is
the natural teacher for recovering what surgery broke: its output distribution says which
wrong classes are nearly right, which one-hot labels do not. ``distill: {weight: W,
temperature: T}`` trains on

    (1 - W) * CE(student, labels) + W * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The KL is averaged over targets, like the cross-entropy: one row of logits per image, one per
position of a text window (the last dim holds the classes for every data kind).

Soft targets are computed on the fly, one teacher forward (no grad, eval mode) per training
batch, not cached: with training augmentation (or text's random windows) no two epochs see
the same inputs, so a cache would hold the teacher's view of inputs the student never gets.
A step with the teacher took 1.1-1.3x a plain step on digits (``benchmarks/recovery.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.errors import UserError
from minsearch.models import build_model
from minsearch.tasks.config import DistillConfig, TaskConfig


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, hard: torch.Tensor,
                 cfg: DistillConfig) -> torch.Tensor:
    """``(1-W) * hard + W * T^2 * KL(p_teacher || p_student)`` at temperature ``T``.

    ``student`` and ``teacher`` are logits ``(..., classes)``; ``hard`` is the label loss
    (cross-entropy, already averaged over targets). Computed in fp32 (autocast or not)."""
    classes = student.shape[-1]
    t = cfg.temperature
    log_student = F.log_softmax(student.float().reshape(-1, classes) / t, dim=-1)
    log_teacher = F.log_softmax(teacher.float().reshape(-1, classes) / t, dim=-1)
    # kl_div(input=log q, target=log p, log_target) = sum p (log p - log q); batchmean: / rows
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return (1 - cfg.weight) * hard + cfg.weight * t * t * kl


def build_teacher(task: TaskConfig, parent_state: dict[str, torch.Tensor] | None,
                  device: torch.device | str = "cpu") -> nn.Module:
    """The unmodified parent: the task's model with ``parent_state`` loaded, in eval mode,
    without gradients, on ``device``."""
    if parent_state is None:
        raise UserError("`distill` needs the parent's weights, but this trial got none; set "
                        "`init: parent` (the search trains or loads the parent first).")
    torch.manual_seed(task.recipe.seed)  # buffers a state dict might lack start alike
    teacher = build_model(task.model)
    teacher.load_state_dict(parent_state)
    return teacher.to(device).eval().requires_grad_(False)
