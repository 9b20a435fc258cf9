"""Low-precision GPU kernels (Triton). Import the submodules explicitly: they import ``triton``,
which ``import minsearch`` must not."""
