"""Tasks: what a search trains and on what data.

- :mod:`.config` — task files (flat YAML) and their validated sections;
- :mod:`.validation` — frozen pydantic configs whose mistakes are one-line user errors;
- :mod:`.data` — datasets as tensors, split deterministically;
- :mod:`.train` — the training loop (divergence is an error, never a NaN);
- :mod:`.candidate` — the parent's cached weights, candidates built from them, exports.
"""
