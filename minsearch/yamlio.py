"""Reading the user's YAML files (tasks, spaces) with one-line errors that point at the spot.

:func:`read_yaml` parses with ``yaml.safe_load`` (no Python tags, nothing executed). A missing
file or a syntax error is a :class:`~minsearch.errors.UserError` naming the file and, for a
syntax error, the 1-based line and column where the parser stopped:
``tasks/x.yaml:3:5: task file is not valid YAML: mapping values are not allowed here``.
A key given twice in one mapping is refused the same way (YAML requires unique keys;
``safe_load`` would silently keep the last value): ``lr`` set twice is a mistake to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from minsearch.errors import UserError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            line = first.get(key)
        except TypeError:  # an unhashable key: construct_mapping says so
            continue
        if line is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {line + 1}); keep one",
                key_node.start_mark)
        first[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of the YAML file at ``path`` (None for an empty file). ``what`` names
    the file's role in messages, e.g. ``"task file"`` or ``"space file"``."""
    path = Path(path)
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"{what[:1].upper()}{what[1:]} {str(path)!r} {state}; check the path.")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"Cannot read {what} {str(path)!r} ({err}).") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = err.problem or err.context or "cannot be parsed"
        raise UserError(f"{where}: {what} is not valid YAML: {problem}.") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: {what} is not valid YAML: {err}.") from None
