"""Fused GPU kernels (Triton) for the layers above: :mod:`.gate_triton` (the gating unit's
squash and gated add). They take plain tensors and numbers and import nothing of minsearch (the
attention kernel, which needs the attention precisions, is
:mod:`minsearch.attention.triton_kernel`). Import the submodules explicitly: they import
``triton``, which ``import minsearch`` must not."""
