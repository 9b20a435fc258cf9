"""Peak memory of an inference batch and of a training step.

On CUDA: the caching allocator's ``max_memory_allocated`` over the measured call, after
``reset_peak_memory_stats`` (includes the weights, optimiser state and inputs on the device).

On CPU there is no allocator counter, so minsearch counts live tensor bytes itself:
:class:`LiveTensorBytes` is a ``TorchDispatchMode`` that sees every op's outputs, counts each
newly allocated storage (one that is not an input of the op: views and in-place results are
not new) until Python frees it. Its peak plus the bytes already held before the call
(weights, buffers, optimiser state, the input batch) is the CPU figure. It is deterministic
and matches the CUDA number's definition (tensor bytes, not allocator caching or Python
overhead); it does not see memory that kernels allocate internally without returning tensors.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from minsearch.objectives.base import (
    MeasureContext,
    Objective,
    measure_batch,
    register_objective,
    synchronize,
)
from minsearch.objectives.size import state_bytes
from minsearch.tasks.train import make_optimizer, train_step


class LiveTensorBytes(TorchDispatchMode):
    """Counts bytes of tensor storages allocated inside the ``with`` block while alive.
    ``peak`` is the most held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self._sizes:
                continue
            self._sizes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def _optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for state in optimizer.state.values()
               for v in state.values() if isinstance(v, torch.Tensor))


def _batch(ctx: MeasureContext) -> tuple[torch.Tensor, torch.Tensor]:
    return measure_batch(ctx, ctx.task.measure.memory_batch)


def peak_bytes(fn, device: torch.device, held: int) -> int:
    """Peak bytes while ``fn()`` runs; ``held`` is what the CPU path adds for tensors that
    exist before the call (the CUDA counter already sees them)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    tracker = LiveTensorBytes()
    with tracker:
        fn()
    return held + tracker.peak


@register_objective
class PeakMemoryInference(Objective):
    """Peak bytes of a forward pass on ``memory_batch`` examples under ``torch.no_grad``."""

    name = "peak_mem_infer_bytes"
    cost_only = True
    direction = "min"
    unit = "bytes"

    def measure(self, ctx: MeasureContext) -> float:
        x, _ = _batch(ctx)
        ctx.model.eval()
        held = state_bytes(ctx.model) + x.numel() * x.element_size()

        def forward() -> None:
            with torch.no_grad():
                ctx.model(x)

        return float(peak_bytes(forward, ctx.device, held))


@register_objective
class PeakMemoryTrain(Objective):
    """Peak bytes of one training step (forward, backward, optimiser step) on
    ``memory_batch`` examples, measured on a copy after one warm-up step (so the optimiser
    state exists, as in the middle of training)."""

    name = "peak_mem_train_bytes"
    cost_only = True
    direction = "min"
    unit = "bytes"

    def measure(self, ctx: MeasureContext) -> float:
        model = copy.deepcopy(ctx.model).train()
        optimizer = make_optimizer(model, ctx.task.recipe)
        x, y = _batch(ctx)
        train_step(model, optimizer, x, y, ctx.task.recipe)
        optimizer.zero_grad(set_to_none=True)
        held = state_bytes(model) + _optimizer_bytes(optimizer) + x.numel() * x.element_size()
        held += y.numel() * y.element_size()
        return float(peak_bytes(lambda: train_step(model, optimizer, x, y, ctx.task.recipe),
                                ctx.device, held))
