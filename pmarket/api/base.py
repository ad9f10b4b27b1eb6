"""The base of the API's response objects and the types of their values.

Every object the API answers with is one ``Out`` model, used three ways: the server
names it as a route's ``response_model`` (the OpenAPI document), the client parses each
answer into it (``Model.model_validate(json)``), and the simulator, the terminal and
tests build and read it. The server's hot routes keep returning plain dicts of that
shape (no model is built per request); the models define the shape.

Invariant: money and prices are ``Decimal`` built from the API's decimal strings (a
JSON number decoded as a float is read through its shortest text), never ``float``, and
go back out as decimal strings; timestamps are timezone-aware ``datetime`` values, sent
as ISO-8601 UTC (``...Z``). Unknown fields in an answer are ignored, so a newer server
never breaks an older client; in the OpenAPI document every field is required (the
server always sends each one), even those a client defaults when an older server left
them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

T = TypeVar("T")


def dec(value: Any) -> Any:
    """An API decimal (a string or a JSON number) as an exact ``Decimal``; anything else
    is left to the model's own check (which refuses it)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # A JSON number decoded as float: its shortest repr is the text that was sent.
        return Decimal(repr(value))
    if isinstance(value, int | str) and not isinstance(value, bool):
        return Decimal(value)
    return value


def iso(value: datetime) -> str:
    """An aware datetime as ISO-8601 UTC (``...Z``), the way the server writes times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Dec = Annotated[
    Decimal, BeforeValidator(dec),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$",
                    "description": "a decimal string, exact"}, mode="serialization"),
]
"""Money or a price in an answer: a ``Decimal``, sent as a decimal string."""

Time = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json"),
                 WithJsonSchema({"type": "string", "format": "date-time"},
                                mode="serialization")]
"""A timestamp in an answer: an aware ``datetime``, sent as ISO-8601 UTC."""


class Out(BaseModel):
    """Base of the API's response objects: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore",
                              json_schema_serialization_defaults_required=True)

    def to_json(self) -> dict[str, Any]:
        """The object as the API's JSON (decimal strings, ISO-8601 times)."""
        return self.model_dump(mode="json")


class Page(Out, Generic[T]):
    """One page of a list endpoint: ``items`` and the ``total`` matching the query.

    Iterating a page iterates its items, and ``len`` counts them.
    """

    items: list[T]
    total: int

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        """``Page[Order]`` is named ``OrderPage`` (in the OpenAPI document too)."""
        return f"{params[0].__name__}Page"

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
