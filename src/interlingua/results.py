"""Typed results: dataclasses that read and write the JSON every command saves.

A result is a :class:`Record`, a dataclass whose fields are the keys of its JSON object.
:meth:`Record.to_json` writes the fields in order (nested records, lists and dicts of records
included) and :meth:`Record.from_json` reads them back, so ``R.from_json(r.to_json()) == r``.
Keys a record does not declare are kept in ``extra`` and written back unchanged, so a file
written by a newer version loses nothing when an older one rewrites it. Fields named in
``OMIT_NONE`` are left out of the JSON while they are ``None`` (the key was optional before
results had types, and scripts test for its presence).

Renderers (:mod:`interlingua.report`) read attributes of these objects, never string keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from interlingua import _io

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for result dataclasses: lossless ``to_json`` / ``from_json`` by field."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()
    extra: dict

    def to_json(self) -> dict:
        out: dict = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_NONE:
                continue
            out[f.name] = _dump(value)
        out.update(self.extra)
        return out

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; the path."""
        path = Path(path)
        _io.write_json(path, self.to_json())
        return path

    @classmethod
    def read(cls: type[R], path: str | Path, remedy: str) -> R:
        """The record saved at ``path`` by :meth:`write`; a missing or broken file fails saying ``remedy``."""
        return cls.from_json(_io.load_json(path, remedy))

    @classmethod
    def from_json(cls: type[R], data: dict) -> R:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} is read from a JSON object, not {type(data).__name__}.")
        hints = _hints(cls)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {name: _load(hints[name], data[name]) for name in known if name in data}
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


_HINTS: dict[type, dict] = {}


def _hints(cls: type) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _load(hint: Any, value: Any) -> Any:
    """``value`` read from JSON as ``hint`` says: records, and lists / dicts / optionals of them."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        records = [a for a in options if _is_record(a) or typing.get_origin(a) in (list, dict, tuple)]
        return _load(records[0], value) if len(records) == 1 else value
    if _is_record(hint):
        return hint.from_json(value) if isinstance(value, dict) else value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        return [_load(item, v) for v in value]
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_load(item, v) for v in value)
    if origin is dict and isinstance(value, dict):
        _, item = typing.get_args(hint) or (str, Any)
        return {k: _load(item, v) for k, v in value.items()}
    return value


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Record)


def record(cls: type) -> type:
    """Decorator: ``cls`` as a dataclass :class:`Record` with an ``extra`` field for undeclared keys."""
    if "extra" not in cls.__dict__.get("__annotations__", {}):
        cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), "extra": "dict"}
        cls.extra = dataclasses.field(default_factory=dict, repr=False, compare=True)
    return dataclasses.dataclass(cls)
