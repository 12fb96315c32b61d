"""TEMPORARY (not committed): old and new migration scripts give the same schema at every step."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from sonobridge.common.db import migrate

REVS = {"inference": 2, "ingest": 6, "maintenance": 3, "reporting": 4}


def _dump(url: str) -> str:
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        out = {}
        for t in sorted(insp.get_table_names()):
            out[t] = {
                "cols": [
                    [c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement")]
                    for c in insp.get_columns(t)
                ],
                "pk": insp.get_pk_constraint(t),
                "ix": sorted(insp.get_indexes(t), key=lambda i: str(i["name"])),
                "uq": sorted(insp.get_unique_constraints(t), key=lambda i: str(i["name"])),
            }
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                out["_sql"] = sorted(str(r[0]) for r in conn.exec_driver_sql("select sql from sqlite_master"))
        return json.dumps(out, sort_keys=True, default=str, indent=1)
    finally:
        engine.dispose()


def _walk(url: str, where: Path, service: str) -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(where))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    dumps = []
    for n in range(1, REVS[service] + 1):
        command.upgrade(config, f"{n:04d}")
        dumps.append(_dump(url))
    for n in range(REVS[service] - 1, 0, -1):
        command.downgrade(config, f"{n:04d}")
        dumps.append(_dump(url))
    command.downgrade(config, "base")
    dumps.append(_dump(url))
    return dumps


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    a = str(request.getfixturevalue("pg_database"))
    b = a.rsplit("/", 1)[0] + "/" + a.rsplit("/", 1)[1]
    return a, b


@pytest.mark.parametrize("service", sorted(REVS))
def test_same_schema(service: str, two_urls: tuple[str, str], tmp_path: Path) -> None:
    new = Path(importlib.import_module(f"sonobridge.{service}").__file__ or "").parent / "migrations"
    old = Path("/tmp/oldmig") / service / "migrations"
    a, b = two_urls
    old_dumps = _walk(a, old, service)
    new_dumps = _walk(b, new, service)
    for i, (x, y) in enumerate(zip(old_dumps, new_dumps, strict=True)):
        if x != y:
            (tmp_path / "old.json").write_text(x)
            (tmp_path / "new.json").write_text(y)
        assert x == y, f"step {i} differs: diff {tmp_path}/old.json {tmp_path}/new.json"
