"""DIMSE caller registry use cases against fakes of the ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, admin, fakes, operator

from sonobridge.common.problems import Forbidden, InvalidInput, NotFound
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.handlers import callers


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    return fakes(tmp_path)


def test_an_admin_registers_then_repoints_a_calling_ae_title(f: Fakes) -> None:
    caller, created = callers.register_caller(f.deps, admin(), " EAST_US1 ", "east", "cart")
    assert created and caller == DimseCaller("EAST_US1", "east", "cart")
    _, created = callers.register_caller(f.deps, admin(), "EAST_US1", "west")
    assert not created
    assert callers.get_caller(f.deps, admin(), "EAST_US1").institution_id == "west"
    assert [r.outcome for r in f.tables.audit] == ["created", "replaced"]


def test_only_admins_see_or_change_the_registry(f: Fakes) -> None:
    with pytest.raises(Forbidden):
        callers.register_caller(f.deps, operator(), "EAST_US1", "east")
    with pytest.raises(Forbidden):
        callers.list_callers(f.deps, operator())
    assert f.tables.callers == {}


def test_removing_an_unknown_title_is_not_found_and_a_bad_title_is_invalid(f: Fakes) -> None:
    with pytest.raises(NotFound):
        callers.remove_caller(f.deps, admin(), "NOBODY")
    with pytest.raises(InvalidInput):
        callers.get_caller(f.deps, admin(), "X" * 17)
    callers.register_caller(f.deps, admin(), "EAST_US1", "east")
    callers.remove_caller(f.deps, admin(), "EAST_US1")
    assert callers.list_callers(f.deps, admin()) == []


def test_resolving_a_calling_title_answers_none_for_unknown_or_malformed(f: Fakes) -> None:
    callers.register_caller(f.deps, admin(), "EAST_US1", "east")
    assert callers.resolve_caller(f.deps, "EAST_US1  ") == DimseCaller("EAST_US1", "east", "")
    assert callers.resolve_caller(f.deps, "WEST_US1") is None
    assert callers.resolve_caller(f.deps, "BAD\\TITLE") is None
