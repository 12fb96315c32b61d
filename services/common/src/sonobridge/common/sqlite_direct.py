"""Hot statements compiled once for SQLite and run on the session's own DBAPI connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


class _Compiled:
    """One statement's SQLite text, its parameters' order and their type conversions."""

    def __init__(self, statement: Executable, dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = cast(ClauseElement, statement).compile(
            dialect=dialect, column_keys=list(keys or ()) or None
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        names = list(compiled.positiontup or ())
        # A value SQLAlchemy would fill in itself (a column default, a literal) is not ours to
        # give: such a statement runs the usual way.
        self.complete = keys is None or set(names) <= set(keys)
        self.binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        # Values the statement carries itself (a literal), given at each execution as well.
        self.constants = {
            name: compiled.binds[name].effective_value
            for name in names
            if keys is None and not compiled.binds[name].required
        }
        selected = _columns(statement)
        self.columns = [c.key for c in selected]
        self.results: list[_Processor] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in selected
        ]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """Return the statement's positional parameters, converted as SQLAlchemy would."""
        if self.constants:
            values = {**self.constants, **values}
        return tuple(
            values[name] if convert is None else convert(values[name])
            for name, convert in self.binds
        )

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        """Return one result row by column name, its values converted as SQLAlchemy would."""
        return {
            name: value if convert is None else convert(value)
            for name, value, convert in zip(self.columns, raw, self.results, strict=True)
        }


class Direct:
    """A Core statement that on SQLite skips SQLAlchemy's per-execution machinery.

    Session.execute of a cached statement costs some 30 us of Python on top of SQLite's own
    ~10 us: the compiled-cache lookup, parameter processing and result set-up run again for
    every row. On the single node's STOW-RS path that is most of what the SQL costs. This
    compiles the statement once and runs it on the session's connection (the same transaction
    and write gate), with SQLAlchemy's type conversions. PostgreSQL, a connection with event
    listeners (statement counters) and a statement SQLAlchemy would fill in go the usual way.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._returns_rows = bool(_columns(statement))
        self._compiled: dict[tuple[str, ...] | None, _Compiled] = {}

    def rows(
        self, session: Session, values: Mapping[str, Any], *, keys: bool = False
    ) -> list[dict[str, Any]] | None:
        """Run the statement with `values`; return its rows, or None where it cannot run here.

        `keys`: the statement's columns are those `values` names (an INSERT given a row).
        """
        connection = session.connection()
        if _observed(connection):
            return None
        shape = tuple(values) if keys else None
        compiled = self._compiled.get(shape)
        if compiled is None:
            compiled = self._compiled.setdefault(
                shape, _Compiled(self.statement, connection.dialect, shape)
            )
        if not compiled.complete:
            return None
        try:
            parameters = compiled.parameters(values)
        except Exception as exc:
            # As SQLAlchemy reports a value its type refuses (a naive datetime).
            raise StatementError(
                f"({type(exc).__module__}.{type(exc).__name__}) {exc}", compiled.sql, values, exc
            ) from exc
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, parameters)
            fetched = cursor.fetchall() if compiled.columns else []
        except sqlite3.Error as exc:
            # The error SQLAlchemy would raise (IntegrityError for a unique key), so callers
            # see one kind either way.
            raise DBAPIError.instance(
                compiled.sql, parameters, exc, sqlite3.Error, dialect=connection.dialect
            ) from exc
        finally:
            cursor.close()
        return [compiled.row(raw) for raw in fetched]

    def run(
        self, session: Session, values: Mapping[str, Any], *, keys: bool = False
    ) -> list[dict[str, Any]]:
        """Run the statement, here where it can, else through the session; return its rows."""
        rows = self.rows(session, values, keys=keys)
        if rows is None:
            result = session.execute(self.statement, dict(values))
            rows = [dict(r._mapping) for r in result] if self._returns_rows else []
        return rows


def _observed(connection: Connection) -> bool:
    """Tell whether the statements must pass SQLAlchemy: another database, or listeners."""
    return (
        connection.dialect.name != "sqlite"
        or connection._has_events
        or connection.engine._has_events
    )


def _columns(statement: Executable) -> list[Any]:
    """A SELECT's columns, or an INSERT's RETURNING ones (none for plain text)."""
    return list(getattr(statement, "exported_columns", ()))
