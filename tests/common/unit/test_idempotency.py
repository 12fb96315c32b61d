"""Idempotency-Key: one change per key, the first answer replayed, a reused key refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, MetaData, create_engine, select
from sqlalchemy.orm import Session

from sonobridge.common.idempotency import (
    IdempotencyKeys,
    KeyTaken,
    Outcome,
    RequestKey,
    StoredAnswer,
    fingerprint,
    once,
    request_key,
)
from sonobridge.common.problems import Conflict, InvalidInput
from sonobridge.common.sql_records import SqlIdempotencyKeys, idempotency_table

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class FakeKeys:
    """Keys in a dict, with the reservation visible at once (as after the other's commit)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], StoredAnswer] = {}

    def find(self, owner: str, key: str) -> StoredAnswer | None:
        return self.rows.get((owner, key))

    def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
        if (owner, key) in self.rows:
            raise KeyTaken(key)
        self.rows[(owner, key)] = StoredAnswer(request, 0, {})

    def remember(self, owner: str, key: str, status: int, body: dict[str, object]) -> None:
        self.rows[(owner, key)] = StoredAnswer(self.rows[(owner, key)].request, status, body)


def _run(keys: IdempotencyKeys, key: RequestKey | None, calls: list[int]) -> Outcome:
    @contextmanager
    def begin() -> Iterator[IdempotencyKeys]:
        yield keys

    def work(_: IdempotencyKeys) -> dict[str, object]:
        calls.append(1)
        return {"id": len(calls)}

    return once(
        begin, lambda unit: unit, owner="u1", key=key, status=201, work=work, now=lambda: NOW
    )


def test_the_fingerprint_ignores_key_order_but_not_content() -> None:
    assert fingerprint("POST", "/v1/a", {"x": 1, "y": 2}) == fingerprint(
        "POST", "/v1/a", {"y": 2, "x": 1}
    )
    assert fingerprint("POST", "/v1/a", {"x": 1}) != fingerprint("POST", "/v1/b", {"x": 1})


def test_a_key_must_be_1_to_255_characters() -> None:
    with pytest.raises(InvalidInput):
        RequestKey("", "f")
    with pytest.raises(InvalidInput):
        RequestKey("k" * 256, "f")
    assert request_key(None, "POST", "/", None) is None
    assert request_key("k", "POST", "/", None) == RequestKey("k", fingerprint("POST", "/", None))


def test_without_a_key_the_change_simply_runs() -> None:
    calls: list[int] = []
    keys = FakeKeys()
    _run(keys, None, calls)
    _run(keys, None, calls)
    assert len(calls) == 2 and not keys.rows


def test_the_second_request_with_a_key_replays_the_first_answer() -> None:
    calls: list[int] = []
    keys = FakeKeys()
    key = RequestKey("k1", "f1")
    first = _run(keys, key, calls)
    again = _run(keys, key, calls)
    assert len(calls) == 1
    assert first == Outcome({"id": 1}, 201)
    assert again == Outcome({"id": 1}, 201, replayed=True)


def test_a_key_reused_for_another_request_is_refused() -> None:
    keys = FakeKeys()
    _run(keys, RequestKey("k1", "f1"), [])
    with pytest.raises(InvalidInput, match="different request"):
        _run(keys, RequestKey("k1", "f2"), [])


def test_a_key_taken_by_a_concurrent_request_replays_its_answer() -> None:
    keys = FakeKeys()

    class Racing(FakeKeys):
        """Finds nothing at first, then loses the reservation to a request that committed."""

        lost = False

        def find(self, owner: str, key: str) -> StoredAnswer | None:
            return keys.find(owner, key) if self.lost else None

        def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
            keys.rows[(owner, key)] = StoredAnswer(request, 201, {"id": 7})
            self.lost = True
            raise KeyTaken(key)

    racing = Racing()
    calls: list[int] = []
    outcome = _run(racing, RequestKey("k1", "f1"), calls)
    assert not calls
    assert outcome.replayed and outcome.body == {"id": 7}


def test_a_key_still_held_by_a_concurrent_request_is_a_409_conflict() -> None:
    class Held(FakeKeys):
        """The other request reserved the key and has not committed: nothing to replay yet."""

        def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
            raise KeyTaken(key)

    calls: list[int] = []
    with pytest.raises(Conflict) as caught:
        _run(Held(), RequestKey("k1", "f1"), calls)
    assert not calls
    assert caught.value.status == 409
    assert caught.value.extensions["reason"] == "idempotency_key_in_use"


@pytest.fixture
def engine() -> Engine:
    return create_engine("sqlite://")


def test_the_sql_keys_replay_across_transactions_and_keep_reportings_schema(
    engine: Engine,
) -> None:
    metadata = MetaData()
    table = idempotency_table(metadata)
    metadata.create_all(engine)
    assert [c.name for c in table.columns] == [
        "user",
        "key",
        "request",
        "status",
        "body",
        "created_at",
    ]

    @contextmanager
    def begin() -> Iterator[Session]:
        with Session(engine) as session, session.begin():
            yield session

    calls: list[int] = []

    def work(_: Session) -> dict[str, object]:
        calls.append(1)
        return {"id": "r1"}

    key = RequestKey("k1", "f1")

    def attempt() -> Outcome:
        return once(
            begin,
            lambda s: SqlIdempotencyKeys(s, table),
            owner="u1",
            key=key,
            status=201,
            work=work,
            now=lambda: NOW,
        )

    first, again = attempt(), attempt()
    assert calls == [1]
    assert not first.replayed and again.replayed and again.body == {"id": "r1"}
    with Session(engine) as session:
        row = session.execute(select(table)).one()
        assert row.created_at == NOW
        with pytest.raises(KeyTaken):
            SqlIdempotencyKeys(session, table).reserve("u1", "k1", "f1", NOW)
