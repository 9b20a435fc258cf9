"""Frozen, validated configs on pydantic, with one-line errors for the user.

A :class:`Config` is a frozen pydantic model that forbids unknown keys. Construction raises
:class:`~minsearch.errors.UserError`, never pydantic's ``ValidationError``: :func:`describe`
turns each failed field into "`lr` must be a number, but got 'fast' (str)." (the key, the
value, the expected type), keeps the message of a rule raised by a validator as it is, and
joins them into one line. :data:`Number` and :data:`Integer` are the field types: numbers
accept what YAML 1.1 leaves a string (``3e-3``), and neither accepts a bool.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from minsearch.errors import UserError


def _number(value: Any, handler: Any) -> Any:
    """A number; an int stays an int as written (``grad_clip: 1``), so the parent cache key,
    which hashes the values, is what it always was. Numeric strings (``3e-3``) are parsed."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "not a number")
    return value if type(value) is int else handler(value)


def _integer(value: Any, handler: Any) -> Any:
    if isinstance(value, bool):  # `epochs: yes` is YAML for True, not 1
        raise PydanticCustomError("int_type", "not an integer")
    return handler(value)


Number = Annotated[float, WrapValidator(_number)]
Integer = Annotated[int, WrapValidator(_integer)]

_EXPECTED = {"number_type": "a number", "float_type": "a number", "float_parsing": "a number",
             "finite_number": "a finite number", "int_type": "an integer",
             "int_parsing": "an integer", "int_from_float": "an integer",
             "string_type": "a string", "bool_type": "true or false",
             "bool_parsing": "true or false", "dict_type": "a mapping", "tuple_type": "a list",
             "list_type": "a list", "model_type": "a mapping"}


def unknown_keys(keys: Iterable[str], known: Iterable[str], what: str) -> str:
    """``Unknown {what} key(s) 'epoch' (did you mean 'epochs'?); known keys: ...``."""
    known = sorted(known)
    hints = []
    for key in keys:
        close = difflib.get_close_matches(str(key), known, 1)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return f"Unknown {what} key(s) {', '.join(hints)}; known keys: {', '.join(known)}."


def describe(err: ValidationError, known: Iterable[str] = (), what: str = "task") -> str:
    """One line for all of a pydantic error's items: the key, the value, what was expected;
    a rule of ours (raised by a validator) keeps its own message."""
    lines, extra = [], []
    for item in err.errors(include_url=False):
        loc = item["loc"]
        key = f"{loc[0]}" + "".join(f"[{p}]" for p in loc[1:]) if loc else ""
        kind, value = item["type"], item.get("input")
        if kind == "value_error":
            lines.append(str(item["ctx"]["error"]))
        elif kind == "extra_forbidden":
            extra.append(key)
        elif kind == "missing":
            lines.append(f"`{key}` is required.")
        elif kind in _EXPECTED:
            lines.append(f"`{key}` must be {_EXPECTED[kind]}, but got {value!r} "
                         f"({type(value).__name__}).")
        else:
            lines.append(f"`{key}`: {item['msg']}, but got {value!r}.")
    if extra:
        lines.insert(0, unknown_keys(extra, known, what))
    return join_messages(lines)


def join_messages(messages: list[str]) -> str:
    """Several one-line messages as one line: ``first; second.``"""
    *head, last = messages
    return "; ".join([*(m.rstrip(".") for m in head), last])


class Config(BaseModel):
    """A frozen, validated config: construction raises :class:`UserError`, never pydantic's
    ``ValidationError``. :meth:`replace` is ``dataclasses.replace`` for these configs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    what: ClassVar[str] = "task"  # names the keys in messages: "Unknown task key(s) ..."

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise UserError(describe(err, type(self).model_fields, self.what)) from None

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` (``model_copy(update=...)`` does not validate)."""
        return type(self)(**{**dict(self), **changes})

    def as_dict(self) -> dict[str, Any]:
        """The fields and their values (what ``dataclasses.asdict`` gave)."""
        return self.model_dump()
