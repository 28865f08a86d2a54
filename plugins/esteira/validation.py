"""Turn pydantic's errors into ones a config author can act on without reading code.

pydantic knows the field path; the YAML document knows the line and how a value was
written. Together they give: file:line: batch.pipeline.steps[1].resources.cpu: message.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from esteira.errors import ConfigError, Problem
from esteira.yaml_source import YamlDocument

M = TypeVar("M", bound=BaseModel)

_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "text",
               type(None): "empty (null)", list: "a list", tuple: "a list", dict: "a mapping"}


def validate_document(model: type[M], doc: YamlDocument) -> M:
    """Validate a parsed YAML document; every problem is reported, each with its line."""
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.file, [Problem(
            f"the file must hold a mapping of fields, not {_describe(doc.data)}", (), 1)])
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(doc.file, [_problem(model, doc, err) for err in exc.errors()]) from None


def _problem(model: type[BaseModel], doc: YamlDocument, err: Any) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a dict key failed; report it at the key itself
        loc = loc[:-1]
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        msg = f"unknown field {loc[-1]!r}"
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        if valid:
            msg += f"; valid fields here: {', '.join(valid)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind.endswith("_type"):
        got = _describe(err.get("input"))
        msg = msg.replace("a valid tuple", "a list").replace("a valid dictionary", "a mapping")
        written = doc.raw_scalars.get(loc)
        if written is not None and kind == "string_type":
            msg = (f"{msg}, but YAML read the unquoted {written} as {got}; "
                   f"quote it to keep it as text: \"{written}\"")
        else:
            msg = f"{msg}, got {got}"
    return Problem(msg, loc, doc.line_for(loc))


def _describe(value: Any) -> str:
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (bool, int, float)) or value is None:
        return f"{name} ({value!r})" if value is not None else name
    return name


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at loc (following lists, tuples and dicts)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            args = [a for a in typing.get_args(current) if a is not Ellipsis]
            current = args[-1] if args else None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp
