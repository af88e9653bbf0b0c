"""The one cattrs converter: structures incoming JSON, unstructures outgoing.

Primitive types are checked strictly: cattrs' defaults would turn `123` into
`"123"` or `"16000"` into `16000`, and P3.7 wants a wrong type named as such.
Outgoing messages omit fields left at `None`, so an optional field the proxy
did not set never reaches the wire as `null`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False, forbid_extra_keys=False)


class MessageError(ValueError):
    """A message does not have the shape its type requires; `path` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _strict(kind: type, name: str):
    def structure(value: Any, _: type) -> Any:
        # bool is a subclass of int: `true` is not a sample rate.
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {name}, got a boolean")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise TypeError(f"expected {name}, got {type(value).__name__ if value is not None else 'null'}")
        return value

    return structure


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "a whole number"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(dict, _strict(dict, "an object"))


def _object_only(cls: type) -> Any:
    """An attrs model is structured from a JSON object only (P3.7).

    cattrs would otherwise build a model whose fields are all optional from
    any value at all: `"agent": "some-id"` or `"audio": [1]` passed as an
    empty object, and a Settings the proxy cannot honour got no Error.
    """
    plain = make_dict_structure_fn(cls, converter)

    def structure(value: Any, _: type) -> Any:
        if not isinstance(value, dict):
            kind = "null" if value is None else "a list" if isinstance(value, list) else type(value).__name__
            raise TypeError(f"expected an object, got {kind}")
        return plain(value, cls)

    return structure


converter.register_structure_hook_factory(attrs.has, _object_only)


def _omit_none_fields(cls: type) -> Any:
    overrides = {
        field.name: override(omit_if_default=True)
        for field in attrs.fields(cls)
        if field.default is None
    }
    return make_dict_unstructure_fn(cls, converter, **overrides)


converter.register_unstructure_hook_factory(attrs.has, _omit_none_fields)


def _first_error(error: BaseException, path: str = "$") -> MessageError:
    """Walk a cattrs error tree down to the first leaf and name its path."""
    if isinstance(error, cattrs.ClassValidationError | cattrs.IterableValidationError):
        for sub in error.exceptions:
            note = next((n for n in getattr(sub, "__notes__", []) if hasattr(n, "name") or hasattr(n, "index")), None)
            if note is not None and hasattr(note, "name"):
                return _first_error(sub, f"{path}.{note.name}")
            if note is not None and hasattr(note, "index"):
                return _first_error(sub, f"{path}[{note.index}]")
            return _first_error(sub, path)
    if isinstance(error, KeyError):
        return MessageError(path, "is required")
    return MessageError(path, str(error) or type(error).__name__)


def structure(data: Any, cls: type[T]) -> T:
    """Structure `data` as `cls`; raises MessageError naming the offending field."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as error:
        raise _first_error(error) from None


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)


def dumps(obj: Any) -> str:
    """Serialise a message model; its class-level TYPE becomes the leading `type` field."""
    body = converter.unstructure(obj)
    message_type = getattr(type(obj), "TYPE", None)
    if message_type is not None:
        body = {"type": message_type, **body}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
