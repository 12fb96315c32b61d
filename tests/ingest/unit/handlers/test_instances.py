"""Storing instances against fakes of the ports: write once, duplicates, conflicts, rejections."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, FakeStagedObject, dicom_file, fakes, operator

from sonobridge.common.problems import Conflict, Forbidden
from sonobridge.ingest.domain.events import InstanceStored
from sonobridge.ingest.domain.model import Channel
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.domain.validation import Rejected, TooLarge
from sonobridge.ingest.handlers import instances

KEY = "dicom/1.2.3/1.2.3.9/1.2.3.1.dcm"


@pytest.fixture(params=["one transaction", "claim then update"])
def f(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    # Every behaviour holds on both paths: small instances' and those over the size limit.
    if request.param == "claim then update":
        monkeypatch.setattr(instances, "SMALL_INSTANCE_BYTES", -1)
    return fakes(tmp_path)


def _stow(f: Fakes, data: bytes, **kwargs: object) -> instances.StoredInstance:
    who = kwargs.pop("principal", operator())
    with f.spooled(data) as spooled:
        return instances.store_instance(
            f.deps,
            who,  # type: ignore[arg-type]
            spooled,
            channel=Channel.STOW,
            **kwargs,  # type: ignore[arg-type]
        )


def test_a_new_instance_is_written_once_indexed_announced_and_audited(f: Fakes) -> None:
    stored = _stow(f, dicom_file())
    assert not stored.duplicate and stored.exam_id is None
    assert f.store.objects[KEY] == dicom_file()
    assert f.tables.instances["1.2.3.1"].status == "stored"
    assert f.tables.instances["1.2.3.1"].institution_id == "east"
    (event,) = f.tables.events
    assert isinstance(event, InstanceStored) and not event.duplicate
    assert [(r.action, r.outcome) for r in f.tables.audit] == [("store_instance", "ok")]


def test_the_same_file_again_is_a_duplicate_that_changes_nothing(f: Fakes) -> None:
    _stow(f, dicom_file())
    again = _stow(f, dicom_file())
    assert again.duplicate
    assert len(f.store.objects) == 1
    assert [e.duplicate for e in f.tables.events if isinstance(e, InstanceStored)] == [
        False,
        True,
    ]


def test_another_file_with_the_same_dataset_is_a_duplicate_another_dataset_conflicts(
    f: Fakes,
) -> None:
    _stow(f, dicom_file())
    # A C-STORE receiver writes its own File Meta: same dataset, different bytes.
    assert _stow(f, dicom_file(meta="other receiver")).duplicate
    with pytest.raises(Conflict) as caught:
        _stow(f, dicom_file(note="edited"))
    assert caught.value.extensions["reason"] == "duplicate_conflict"
    assert f.tables.audit[-1].outcome == "rejected:duplicate_conflict"


def test_a_study_of_another_institution_is_refused(f: Fakes) -> None:
    _stow(f, dicom_file())
    with pytest.raises(Forbidden):
        _stow(f, dicom_file(sop="1.2.3.2"), principal=operator("west", "sono-9"))
    assert "1.2.3.2" not in f.tables.instances


def test_a_study_contradicting_the_request_path_is_rejected_and_counted(f: Fakes) -> None:
    with pytest.raises(Rejected):
        _stow(f, dicom_file(), expected_study="1.2.4")
    assert f.store.objects == {} and f.tables.instances == {}
    rejected = f.deps.metrics.rejections.labels("uid_mismatch")._value.get()
    assert rejected == 1


def test_an_instance_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    small = fakes(tmp_path, max_instance_bytes=10)
    with pytest.raises(TooLarge):
        _stow(small, dicom_file())
    assert small.tables.audit[-1].outcome.startswith("rejected:")


def test_a_fresh_claim_of_another_writer_makes_this_one_wait_then_give_up(
    f: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "_CLAIM_WAIT_S", 0.0)
    _stow(f, dicom_file())
    f.tables.instances["1.2.3.1"] = _pending(f)
    with pytest.raises(Conflict) as caught:
        _stow(f, dicom_file())
    assert caught.value.extensions["reason"] == "busy"


def test_a_claim_not_renewed_for_a_lease_is_taken_over(
    f: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "_CLAIM_WAIT_S", 0.0)
    _stow(f, dicom_file())
    f.tables.instances["1.2.3.1"] = _pending(f)
    f.clock.advance(seconds=29)
    with pytest.raises(Conflict) as caught:
        _stow(f, dicom_file())  # its writer may still be alive and renewing
    assert caught.value.extensions["reason"] == "busy"
    f.clock.advance(seconds=2)
    stored = _stow(f, dicom_file())
    assert not stored.duplicate and f.tables.instances["1.2.3.1"].status == "stored"


def test_a_writer_frozen_past_its_lease_keeps_away_from_the_claim_taken_over(
    f: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "SMALL_INSTANCE_BYTES", 0)  # claim, stream, then index
    real_put = f.store.put
    taker: list[instances.StoredInstance] = []

    def frozen_put(key: str, stream: object, **kwargs: object) -> object:
        # The first writer stops mid-object past its lease; a retry takes the claim over.
        monkeypatch.setattr(f.store, "put", real_put)
        f.clock.advance(seconds=31)
        taker.append(_stow(f, dicom_file()))
        return real_put(key, stream, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(f.store, "put", frozen_put)
    with pytest.raises(Conflict) as caught:
        _stow(f, dicom_file())
    assert caught.value.extensions["reason"] == "busy"
    # The taker's row and object stand: the late writer neither indexed nor deleted anything.
    assert not taker[0].duplicate
    stored = f.tables.instances["1.2.3.1"]
    assert stored.status == "stored" and stored.object_key in f.store.objects
    assert f.store.objects[stored.object_key] == dicom_file()


def test_a_writer_renews_its_claim_while_it_streams(f: Fakes) -> None:
    _stow(f, dicom_file())
    f.tables.instances["1.2.3.1"] = _pending(f)
    lease = instances.ClaimLease(f.deps, "1.2.3.1", f.clock())
    f.clock.advance(seconds=20)
    assert lease.renew() and lease.claimed_at == f.clock()
    assert f.tables.instances["1.2.3.1"].claimed_at == f.clock()
    # Once another writer holds the claim, a renewal of the old one matches nothing.
    f.tables.instances["1.2.3.1"] = replace(
        _pending(f), claimed_at=f.clock() + timedelta(seconds=1)
    )
    assert not lease.renew()


def test_a_failed_object_write_leaves_neither_claim_nor_object(
    f: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(f.store, "put", broken)
    monkeypatch.setattr(FakeStagedObject, "publish", broken)
    with pytest.raises(OSError):
        _stow(f, dicom_file())
    assert f.tables.instances == {} and f.store.objects == {}


def test_a_small_instance_costs_one_commit_a_large_one_a_claim_and_an_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = fakes(tmp_path / "small")
    _stow(small, dicom_file())
    monkeypatch.setattr(instances, "SMALL_INSTANCE_BYTES", len(dicom_file()) - 1)
    large = fakes(tmp_path / "large")
    _stow(large, dicom_file())
    assert (small.db.commits, large.db.commits) == (1, 2)
    assert small.tables.instances == large.tables.instances
    assert small.store.objects == large.store.objects


def _pending(f: Fakes) -> Instance:
    return replace(f.tables.instances["1.2.3.1"], status="pending", claimed_at=f.clock())


def test_the_object_is_linked_then_its_folder_synced_then_its_row_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = fakes(tmp_path)
    seen: list[tuple[bool, int]] = []
    # At the folder sync: is the object in place, and how many commits happened before it?
    monkeypatch.setattr(
        f.store, "sync_folders", lambda: seen.append((KEY in f.store.objects, f.db.commits))
    )
    _stow(f, dicom_file())
    assert seen == [(True, 0)] and f.db.commits == 1
