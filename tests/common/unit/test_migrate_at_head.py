"""A service whose schema is at head starts without loading Alembic; any other state migrates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from sonobridge.common.db import create_db_engine, migrate, schema_at_head, script_heads

SERVICES = Path(__file__).resolve().parents[3] / "services"


def _migrations(service: str) -> Path:
    return SERVICES / service / "src" / "sonobridge" / service / "migrations"


@pytest.mark.parametrize("service", ["ingest", "inference", "reporting", "maintenance"])
def test_the_head_read_from_the_scripts_is_the_newest_script(service: str) -> None:
    newest = sorted((_migrations(service) / "versions").glob("0*.py"))[-1].name
    assert script_heads(_migrations(service)) == {newest.split("_", 1)[0]}


def test_a_new_database_is_not_at_head_nor_one_with_scripts_pending(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    where = _migrations("ingest")
    assert not schema_at_head(engine, where)
    migrate(str(engine.url), where, "0005", engine=engine)
    # Ingest keeps its own version table; 0005 there means later scripts are still to run.
    assert not schema_at_head(engine, where)
    migrate(str(engine.url), where, engine=engine)
    assert schema_at_head(engine, where)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT version_num FROM alembic_version_ingest")).scalar_one()
    assert {row} == script_heads(where)


def test_a_restart_at_head_never_imports_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inference.sqlite3'}"
    where = _migrations("inference")
    migrate(url, where, engine=create_db_engine(url))
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sonobridge.common.db import create_db_engine, migrate\n"
        f"migrate({url!r}, Path({str(where)!r}), engine=create_db_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
