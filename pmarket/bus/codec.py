"""Wire format of engine commands and events: compact JSON through orjson.

A command travels as ``{"type": "<ClassName>", field: value, ...}`` with enums as their
values and tuples as arrays; a nested command (``PlaceBatch.orders``) as its fields
alone, its class being fixed by the field's type. The field list and the converters are
derived once per class from ``dataclasses.fields`` and the type hints (``field_types``),
so a new command class in ``pmarket.engine.commands`` is on the wire without touching
this module.

Events are the engine's typed records; a list of them travels as an array of their wire
forms (``events.to_wire``: ``[kind, field, ...]``) and comes back as equal records
(``events.from_wire``), so ``decode_events(encode_events(e)) == e``.

Invariant: ``decode_command(encode_command(c)) == c`` for every command, and decoding
either returns a well-typed command or raises ``CodecError`` — a malformed message never
reaches the engine (the consumer dead-letters it instead).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import operator
import types
import typing
from collections.abc import Callable
from typing import Any

import orjson

from pmarket.engine import commands as engine_commands
from pmarket.engine.commands import Command
from pmarket.engine.events import EngineEvent, from_wire, wire_rows


class CodecError(ValueError):
    """A payload is not a valid encoding of a command or an event list."""


_Decoder = Callable[[Any], Any]
_MISSING = object()


def _command_classes() -> dict[str, type[Command]]:
    found: dict[str, type[Command]] = {}
    pending = list(Command.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # @dataclass(slots=True) replaces each class with a new one; the original lingers
        # in __subclasses__() until the garbage collector runs, and must not win.
        if getattr(engine_commands, cls.__name__, None) is cls:
            found[cls.__name__] = cls
    return found


def _plain(expected: type) -> _Decoder:
    def decode(value: Any) -> Any:
        # `type is`, not isinstance: a bool must not pass for an int, nor an int for a bool.
        if type(value) is not expected:
            raise CodecError(f"expected {expected.__name__}, got {value!r}")
        return value

    return decode


def _enum(cls: type[enum.Enum]) -> _Decoder:
    def decode(value: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise CodecError(f"{value!r} is not a valid {cls.__name__}") from None

    return decode


def _optional(inner: _Decoder) -> _Decoder:
    def decode(value: Any) -> Any:
        return None if value is None else inner(value)

    return decode


def _tuple_of(item: _Decoder) -> _Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise CodecError(f"expected an array, got {value!r}")
        return tuple(item(v) for v in value)

    return decode


def _decoder_for(hint: Any) -> _Decoder:
    """A decoder from the JSON value of a field to the Python value its hint names."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {hint!r}")
        return _optional(_decoder_for(args[0]))
    if origin is tuple:
        item, ellipsis = typing.get_args(hint)
        if ellipsis is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, got {hint!r}")
        return _tuple_of(_decoder_for(item))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if isinstance(hint, type) and issubclass(hint, Command):
        return _fields_decoder(hint)
    if hint in (int, str, bool):
        return _plain(hint)
    raise TypeError(f"no wire format for field type {hint!r}")


def field_types(cls: type[Command]) -> dict[str, Any]:
    """The type of each field of ``cls`` on the wire: its type hint, a client-controlled
    field's ``Unchecked[T]`` (``T | Any``, see ``commands``) read as ``T``."""
    return {name: _without_any(hint)
            for name, hint in typing.get_type_hints(cls, vars(engine_commands)).items()}


def _without_any(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        kept = tuple(a for a in args if a is not Any)
        if len(kept) != len(args):
            return functools.reduce(operator.or_, kept)
    return hint


def _fields_decoder(cls: type[Command]) -> _Decoder:
    """Decoder of an object of ``cls``'s fields (without ``type``) into a ``cls``.

    The decoder is generated source, one straight-line check per field (the same checks
    as the per-field converters, which it falls back on for tuples and nested
    commands): the engine's hot path decodes each command in ~2 µs instead of ~15.
    """
    hints = field_types(cls)
    name = cls.__name__
    env: dict[str, Any] = {"cls": cls, "CodecError": CodecError, "MISSING": _MISSING,
                           "bad": _bad, "extra": _extra}
    lines = ["def decode(obj):",
             "    if type(obj) is not dict:",
             f"        raise CodecError(f'{name} must be an object, got {{obj!r}}')",
             "    used = 1 if 'type' in obj else 0"]
    kwargs = []
    for i, f in enumerate(dataclasses.fields(cls)):
        var = f"f{i}"
        kwargs.append(f"{f.name}={var}")
        lines.append(f"    {var} = obj.get({f.name!r}, MISSING)")
        if f.default is not dataclasses.MISSING:
            env[f"default{i}"] = f.default
            lines += [f"    if {var} is MISSING:", f"        {var} = default{i}", "    else:"]
        elif f.default_factory is not dataclasses.MISSING:
            env[f"factory{i}"] = f.default_factory
            lines += [f"    if {var} is MISSING:", f"        {var} = factory{i}()", "    else:"]
        else:
            lines += [f"    if {var} is MISSING:",
                      f"        raise CodecError({f'{name} is missing field {f.name!r}'!r})",
                      "    else:"]
        lines.append("        used += 1")
        lines += _field_check(hints[f.name], var, f"{name}.{f.name}", i, env, "        ")
    lines += ["    if used != len(obj):",
              f"        extra(obj, {name!r}, known)",
              f"    return cls({', '.join(kwargs)})"]
    env["known"] = frozenset(f.name for f in dataclasses.fields(cls)) | {"type"}
    exec("\n".join(lines), env)  # source built from the class's own fields
    decode: _Decoder = env["decode"]
    return decode


def _field_check(hint: Any, var: str, where: str, i: int, env: dict[str, Any],
                 indent: str) -> list[str]:
    """Source lines checking (and converting in place) the JSON value in ``var``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            inner = _field_check(args[0], var, where, i, env, indent + "    ")
            return [f"{indent}if {var} is not None:", *inner]
    if hint in (int, str, bool):
        env[hint.__name__] = hint
        return [f"{indent}if type({var}) is not {hint.__name__}:",
                f"{indent}    bad({where!r}, f'expected {hint.__name__}, got {{{var}!r}}')"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        env[f"members{i}"] = hint._value2member_map_
        return [f"{indent}try:",
                f"{indent}    {var} = members{i}[{var}]",
                f"{indent}except (KeyError, TypeError):",
                f"{indent}    bad({where!r}, f'{{{var}!r}} is not a valid {hint.__name__}')"]
    env[f"convert{i}"] = _decoder_for(hint)
    return [f"{indent}try:",
            f"{indent}    {var} = convert{i}({var})",
            f"{indent}except CodecError as exc:",
            f"{indent}    bad({where!r}, str(exc))"]


def _bad(where: str, error: str) -> None:
    raise CodecError(f"{where}: {error}")


def _extra(obj: dict, name: str, known: frozenset[str]) -> None:
    raise CodecError(f"{name} has unknown fields {sorted(obj.keys() - known)}")


COMMAND_TYPES: dict[str, type[Command]] = _command_classes()
"""Every concrete command class, by the name it has on the wire."""

_FIELD_NAMES = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in COMMAND_TYPES.items()
}
_DECODERS = {name: _fields_decoder(cls) for name, cls in COMMAND_TYPES.items()}


def encode_command(command: Command) -> bytes:
    """Encode a command as ``{"type": ClassName, ...fields}`` JSON bytes.

    Raises:
        CodecError: the command's class is not a known command class.
    """
    name = type(command).__name__
    names = _FIELD_NAMES.get(name)
    if names is None:
        raise CodecError(f"{name} is not a command class")
    obj: dict[str, Any] = {"type": name}
    for field_name in names:
        obj[field_name] = getattr(command, field_name)
    # orjson writes enums as their values, tuples as arrays, nested dataclasses as objects.
    return orjson.dumps(obj)


def decode_command(data: bytes) -> Command:
    """Decode bytes made by ``encode_command`` back into an equal command.

    Raises:
        CodecError: not JSON, unknown type, missing or unknown field, or a wrong value.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"command is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise CodecError(f"command must be a JSON object, got {type(obj).__name__}")
    decode = _DECODERS.get(obj.get("type"))  # type: ignore[arg-type]
    if decode is None:
        raise CodecError(f"unknown command type {obj.get('type')!r}")
    return decode(obj)


def encode_events(events: list[EngineEvent]) -> bytes:
    """Encode a list of engine events as a JSON array of their wire forms."""
    return orjson.dumps(wire_rows(events))


def decode_events(data: bytes) -> list[EngineEvent]:
    """Decode bytes made by ``encode_events`` back into equal events.

    Raises:
        CodecError: not a JSON array of events (arrays starting with a kind string and
            holding that kind's fields).
    """
    rows = event_rows(data)
    try:
        return [from_wire(row) for row in rows]
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def event_rows(data: bytes) -> list:
    """The rows of ``encode_events`` bytes, not yet made events (``decode_events``;
    ``runtime.slicing`` makes them in slices).

    Raises:
        CodecError: not a JSON array.
    """
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"events are not JSON: {exc}") from None
    if type(rows) is not list:
        raise CodecError("events must be a JSON array")
    return rows
