"""Turning SQLAlchemy rows into ingest's domain records, and results into answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Row

from sonobridge.ingest.domain.records import Exam, Instance, UploadSession

_Record = TypeVar("_Record", Exam, Instance, UploadSession)


def record(kind: type[_Record], row: Row[Any]) -> _Record:
    """Build a domain record from the row's columns of the same names."""
    return record_of(kind, row._mapping)


def record_of(kind: type[_Record], values: Mapping[str, Any]) -> _Record:
    """Build a domain record from the values of the same names."""
    return kind(**{f.name: values[f.name] for f in fields(kind) if f.name in values})


def optional(kind: type[_Record], row: Row[Any] | None) -> _Record | None:
    """Build a domain record from a row, or None when there is none."""
    return None if row is None else record(kind, row)


def values_of(item: Any) -> dict[str, Any]:
    """Return a domain record's fields as column values."""
    return {f.name: getattr(item, f.name) for f in fields(item)}


def changed(result: Any) -> bool:
    """Tell whether an UPDATE or DELETE touched a row."""
    return bool(result.rowcount)


def given(**values: Any) -> dict[str, Any]:
    """Keep only the values that were given (not None)."""
    return {name: value for name, value in values.items() if value is not None}
