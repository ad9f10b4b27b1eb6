"""Typed, position-aware reading of a YAML document, for scenario validation.

Scenario files are read from PyYAML's *node* tree (``yaml.compose``), never from the
objects ``yaml.safe_load`` would build: a node keeps its line and column, and a scalar
keeps its exact source text. That is how ``price: 0.57`` reaches ``units.parse_price``
as the text "0.57" rather than as a float, and how every error points at the line and
field it is about.

Invariant: every value handed to the rest of the simulator was read through a ``Field``
method, so it has been type-checked, and every mapping was read with ``keys``, so an
unknown or duplicated key is always reported, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import yaml

from ..engine import units

T = TypeVar("T")

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|min|h|d)\s*$")
_DURATION_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000,
                "d": 86_400_000}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|min|h|d)\s*$")
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, located at a line, column and field."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class Invalid(Exception):
    """Raised by ``Field`` when a value is wrong; carries the located ``Problem``.

    ``problem`` is None for an error that only follows from one already reported (a
    reference to a step that was itself invalid): it stops the step, silently.
    """

    def __init__(self, problem: Problem | None):
        super().__init__(str(problem) if problem else "follows from an earlier problem")
        self.problem = problem


class ScenarioError(Exception):
    """A scenario file failed validation; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Problems:
    """Collects problems so that one run of validation reports as many as it can."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Record an ``Invalid`` raised inside the block instead of propagating it."""
        try:
            yield
        except Invalid as exc:
            if exc.problem is not None:
                self.items.append(exc.problem)

    def raise_if_any(self) -> None:
        """Raise ``ScenarioError`` with every recorded problem, if there is one."""
        if self.items:
            raise ScenarioError(self.items)


def compose(text: str, file: str) -> Field:
    """Parse YAML text into a root ``Field``.

    Raises:
        ScenarioError: if the text is not well-formed YAML or is empty.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioError(
            [Problem(file, line, column, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    if node is None:
        raise ScenarioError([Problem(file, 1, 1, "", "the file is empty")])
    return Field(node, "", file)


class Field:
    """One YAML node with its dotted path (``steps[3].place.price``) and position."""

    __slots__ = ("file", "node", "path")

    def __init__(self, node: yaml.Node, path: str, file: str):
        self.node = node
        self.path = path
        self.file = file

    # --- position and errors -------------------------------------------------------

    @property
    def line(self) -> int:
        """1-based line of the node's start."""
        return self.node.start_mark.line + 1

    @property
    def column(self) -> int:
        """1-based column of the node's start."""
        return self.node.start_mark.column + 1

    def problem(self, message: str) -> Problem:
        """A ``Problem`` located at this node."""
        return Problem(self.file, self.line, self.column, self.path, message)

    def fail(self, message: str) -> Invalid:
        """An ``Invalid`` to raise for this node: ``raise field.fail("...")``."""
        return Invalid(self.problem(message))

    def child(self, node: yaml.Node, name: str | int) -> Field:
        """The field of a sub-node, with its path extended by a key or an index."""
        if isinstance(name, int):
            return Field(node, f"{self.path}[{name}]", self.file)
        return Field(node, f"{self.path}.{name}" if self.path else name, self.file)

    # --- structure -----------------------------------------------------------------

    @property
    def is_null(self) -> bool:
        """Whether the node is YAML null (``~``, ``null`` or nothing)."""
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def entries(self) -> list[tuple[str, Field]]:
        """The (key, value) pairs of a mapping in file order; keys must be unique."""
        if not self.is_mapping:
            raise self.fail(f"expected a mapping, found {self._kind()}")
        seen: set[str] = set()
        out = []
        for key_node, value_node in self.node.value:
            key_field = self.child(key_node, "<key>")
            if not isinstance(key_node, yaml.ScalarNode):
                raise key_field.fail("mapping keys must be plain names")
            key = key_node.value
            if key in seen:
                raise Field(key_node, self._join(key), self.file).fail(f"duplicate key '{key}'")
            seen.add(key)
            out.append((key, self.child(value_node, key)))
        return out

    def keys(self, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
             ) -> dict[str, Field]:
        """Read a mapping whose keys must come from ``required`` and ``optional``.

        Raises:
            Invalid: at the offending key for an unknown key, or at the mapping for a
                missing required one.
        """
        allowed = tuple(dict.fromkeys(required + optional))
        out: dict[str, Field] = {}
        for (key, value), key_node in zip(self.entries(), self._key_nodes(), strict=True):
            if key not in allowed:
                hint = ", ".join(allowed) if allowed else "none"
                raise Field(key_node, self._join(key), self.file).fail(
                    f"unknown key '{key}' (allowed here: {hint})")
            out[key] = value
        missing = [k for k in required if k not in out]
        if missing:
            raise self.fail(f"missing required key '{missing[0]}'")
        return out

    def items(self) -> list[Field]:
        """The elements of a sequence."""
        if not self.is_sequence:
            raise self.fail(f"expected a list, found {self._kind()}")
        return [self.child(n, i) for i, n in enumerate(self.node.value)]

    # --- scalars -------------------------------------------------------------------

    def text(self) -> str:
        """A scalar's exact source text (``yes`` stays "yes", ``0.50`` stays "0.50")."""
        if not isinstance(self.node, yaml.ScalarNode) or self.is_null:
            raise self.fail(f"expected a value, found {self._kind()}")
        return self.node.value

    def name(self) -> str:
        """A non-empty name without surrounding spaces."""
        value = self.text().strip()
        if not value:
            raise self.fail("expected a non-empty name")
        return value

    def integer(self, low: int | None = None, high: int | None = None) -> int:
        """A whole number, optionally bounded (inclusive)."""
        raw = self.text()
        if self.node.tag != _INT:
            raise self.fail(f"expected a whole number, got {raw!r}")
        value = int(raw.replace("_", ""), 0)
        if low is not None and value < low:
            raise self.fail(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise self.fail(f"must be at most {high}, got {value}")
        return value

    def boolean(self) -> bool:
        """``true``/``false`` (``yes``/``no`` and ``on``/``off`` too)."""
        raw = self.text().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise self.fail(f"expected true or false, got {raw!r}")

    def choice(self, options: tuple[str, ...]) -> str:
        """One of a fixed set of words."""
        raw = self.text().strip().lower()
        if raw not in options:
            raise self.fail(f"expected one of {', '.join(options)}, got {raw!r}")
        return raw

    def decimal_text(self) -> str:
        """The exact text of a decimal number (a quoted string or a bare number)."""
        raw = self.text()
        if self.node.tag not in (_INT, _FLOAT, "tag:yaml.org,2002:str"):
            raise self.fail(f"expected a decimal number, got {raw!r}")
        return raw.strip()

    def units_of(self, parse: Callable[[str], T]) -> T:
        """Apply a ``units`` parser to the exact text; its ``ValueError`` is located here."""
        try:
            return parse(self.decimal_text())
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def price(self, tick: int) -> int:
        """A price on the ``tick`` grid strictly between 0 and 1, in units."""
        return self.units_of(lambda raw: units.parse_price(raw, tick))

    def amount(self) -> int:
        """A positive amount of money, in units."""
        return self.units_of(lambda raw: units.parse_amount(raw, self.path.split(".")[-1]))

    def money(self) -> int:
        """Any exact amount of money (zero and negative allowed), in units."""
        return self.units_of(lambda raw: units.to_units(raw, self.path.split(".")[-1]))

    def duration_ms(self, allow_zero: bool = True) -> int:
        """A duration with a unit ("500ms", "5s", "2m", "1h", "1d") in milliseconds."""
        raw = self.text()
        match = _DURATION.match(raw)
        if match is None:
            raise self.fail(f"expected a duration such as 500ms, 5s, 2m, 1h or 1d, got {raw!r}")
        ms = int(match[1]) * _DURATION_MS[match[2]]
        if not allow_zero and ms == 0:
            raise self.fail("must be longer than 0")
        return ms

    def rate_interval_ms(self) -> float:
        """A rate ("2/s", "30/m", "100/h") as the mean interval between events, in ms."""
        raw = self.text()
        match = _RATE.match(raw)
        if match is None or float(match[1]) <= 0:
            raise self.fail(f"expected a rate such as 2/s, 30/m or 100/h, got {raw!r}")
        return _DURATION_MS[match[2]] / float(match[1])

    # --- helpers -------------------------------------------------------------------

    def _key_nodes(self) -> list[yaml.Node]:
        return [k for k, _ in self.node.value]

    def _join(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _kind(self) -> str:
        if self.is_null:
            return "nothing"
        if self.is_mapping:
            return "a mapping"
        if self.is_sequence:
            return "a list"
        return f"{self.node.value!r}"
