"""Map a dataclass record to the row of a table whose columns carry its field names, and back."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def record_from_row(kind: type[R], row: Any, **converted: Any) -> R:
    """Build a record from a row: each field from its column, or from `converted` when given.

    `converted` carries what a column cannot give as stored (enums, copies, nested records);
    a field with neither a column nor a converted value keeps its default.
    """
    columns = row._mapping
    values = {
        f.name: converted[f.name] if f.name in converted else columns[f.name]
        for f in fields(kind)
        if f.init and (f.name in converted or f.name in columns)
    }
    return kind(**values)


def row_values(
    record: DataclassInstance, *, exclude: Collection[str] = (), **converted: Any
) -> dict[str, Any]:
    """Return a record's fields as column values, `converted` ones as given, `exclude`d left out."""
    return {
        f.name: converted[f.name] if f.name in converted else getattr(record, f.name)
        for f in fields(record)
        if f.name not in exclude
    }
