"""gRPC IngestService over a real channel: exam state, missing instances, paging and access."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest
from ingest.ingest_support import RunningIngest, app_upload, new_exam, synthetic_instance, uids

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc

STUDY = "1.2.826.0.1.3680043.8.498.9001"


@pytest.fixture
def stub(ingest: RunningIngest) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    """A stub on a plain channel to the service's bound gRPC port."""
    channel = grpc.insecure_channel(f"127.0.0.1:{ingest.host.app.state.grpc_port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield ingest_pb2_grpc.IngestServiceStub(channel)
    finally:
        channel.close()


def _auth(ingest: RunningIngest, **identity: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {ingest.token(**identity)}"),)


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    assert isinstance(call, grpc.RpcError)
    return call.code(), call.details()


def test_get_exam_reports_received_and_missing_instances_until_complete(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    first = synthetic_instance(study=STUDY, seed=1)
    second = synthetic_instance(study=STUDY, seed=2, frames=3)
    manifest = {
        "instances": [
            {"sop_instance_uid": uids(d)[2], "sha256": hashlib.sha256(d).hexdigest()}
            for d in (first, second)
        ]
    }
    with ingest.client() as client:
        exam_id = new_exam(client, exam_type="thyroid")
        receiving = stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=_auth(ingest))
        assert receiving.exam.state == ingest_pb2.EXAM_STATE_RECEIVING
        assert receiving.exam.received_instance_count == 0
        assert receiving.exam.manifest_sha256 == ""
        assert app_upload(client, exam_id, first).status_code == 204
        assert client.post(f"/v1/exams/{exam_id}/complete", json=manifest).status_code == 200

        waiting = stub.GetExam(
            ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=_auth(ingest)
        ).exam
        assert waiting.state == ingest_pb2.EXAM_STATE_AWAITING_INSTANCES
        assert waiting.expected_instance_count == 2
        assert waiting.received_instance_count == 1
        assert list(waiting.missing_sop_instance_uids) == [uids(second)[2]]
        assert waiting.received_bytes == len(first)
        assert len(waiting.manifest_sha256) == 64
        assert not waiting.HasField("completed_at")
        assert waiting.created_at.seconds > 0
        assert waiting.context.exam_id == exam_id
        assert waiting.context.institution_id == "township-a"
        assert waiting.context.device_serial == "PROBE-1"
        assert waiting.context.exam_type == events_pb2.EXAM_TYPE_THYROID
        assert waiting.context.study_instance_uid == STUDY

        assert app_upload(client, exam_id, second).status_code == 204
    done = stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=_auth(ingest)).exam
    assert done.state == ingest_pb2.EXAM_STATE_COMPLETED
    assert list(done.missing_sop_instance_uids) == []
    assert done.received_instance_count == 2
    assert done.received_bytes == len(first) + len(second)
    assert done.HasField("completed_at")
    assert done.completed_at.ToDatetime() >= done.created_at.ToDatetime()


def test_list_exam_instances_pages_through_what_was_stored(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    files = [synthetic_instance(study=STUDY, seed=i, frames=1 + i) for i in range(3)]
    with ingest.client() as client:
        exam_id = new_exam(client)
        for data in files:
            assert app_upload(client, exam_id, data).status_code == 204
    seen: list[events_pb2.InstanceRef] = []
    token = ""
    pages = 0
    while True:
        page = stub.ListExamInstances(
            ingest_pb2.ListExamInstancesRequest(exam_id=exam_id, page_size=2, page_token=token),
            metadata=_auth(ingest),
        )
        pages += 1
        seen.extend(page.instances)
        token = page.next_page_token
        if not token:
            break
    assert pages == 2
    by_sop = {ref.sop_instance_uid: ref for ref in seen}
    assert len(seen) == 3 and len(by_sop) == 3
    for index, data in enumerate(files):
        study, series, sop = uids(data)
        ref = by_sop[sop]
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert ref.size_bytes == len(data)
        assert ref.number_of_frames == 1 + index
        assert ref.object_key == f"dicom/{study}/{series}/{sop}.dcm"
        assert ref.modality == "US"
        assert ingest.object_bytes(ref.object_key) == data
    everything = stub.ListExamInstances(
        ingest_pb2.ListExamInstancesRequest(exam_id=exam_id), metadata=_auth(ingest)
    )
    assert len(everything.instances) == 3 and everything.next_page_token == ""
    with pytest.raises(grpc.RpcError) as bad_token:
        stub.ListExamInstances(
            ingest_pb2.ListExamInstancesRequest(exam_id=exam_id, page_token="not-a-cursor"),
            metadata=_auth(ingest),
        )
    code, details = _code(bad_token.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in details
    # Past the maximum the page size is refused, as the other services' list RPCs refuse it.
    with pytest.raises(grpc.RpcError) as too_large:
        stub.ListExamInstances(
            ingest_pb2.ListExamInstancesRequest(exam_id=exam_id, page_size=1001),
            metadata=_auth(ingest),
        )
    code, details = _code(too_large.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size must be at most 1000" in details


def test_calls_without_a_valid_token_are_unauthenticated(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client)
    for metadata in ((), (("authorization", "Bearer not-a-jwt"),), (("authorization", "x"),)):
        for call, request in (
            (stub.GetExam, ingest_pb2.GetExamRequest(exam_id=exam_id)),
            (stub.ListExamInstances, ingest_pb2.ListExamInstancesRequest(exam_id=exam_id)),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                call(request, metadata=metadata)
            code, details = _code(raised.value)
            assert code == grpc.StatusCode.UNAUTHENTICATED, details
            assert details


def test_another_institutions_exam_is_not_found_but_the_serving_county_physician_sees_it(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client)
        assert app_upload(client, exam_id, synthetic_instance(seed=5)).status_code == 204
    stranger = _auth(ingest, user="nurse-b", institution="township-b")
    for call, request in (
        (stub.GetExam, ingest_pb2.GetExamRequest(exam_id=exam_id)),
        (stub.ListExamInstances, ingest_pb2.ListExamInstancesRequest(exam_id=exam_id)),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, metadata=stranger)
        code, details = _code(raised.value)
        assert code == grpc.StatusCode.NOT_FOUND
        assert exam_id in details
    township_gp = _auth(ingest, user="dr-b", roles=("physician",), institution="township-b")
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=township_gp)
    assert _code(raised.value)[0] == grpc.StatusCode.NOT_FOUND
    physician = _auth(ingest, user="dr-li", roles=("physician",), institution="county-hospital")
    seen = stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=physician)
    assert seen.exam.received_instance_count == 1
    other_county = _auth(
        ingest,
        user="dr-wu",
        roles=("physician",),
        institution="other-hospital",
        consortium="county-2",
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=other_county)
    assert _code(raised.value)[0] == grpc.StatusCode.NOT_FOUND
    engineer = _auth(ingest, user="eng-1", roles=("engineer",))
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=engineer)
    assert _code(raised.value)[0] == grpc.StatusCode.PERMISSION_DENIED


def test_unknown_and_malformed_exam_ids_get_clear_statuses(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetExam(
            ingest_pb2.GetExamRequest(exam_id="6f1c8f0e-0000-4000-8000-000000000000"),
            metadata=_auth(ingest),
        )
    assert _code(unknown.value)[0] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as malformed:
        stub.GetExam(ingest_pb2.GetExamRequest(exam_id="exam-1"), metadata=_auth(ingest))
    code, details = _code(malformed.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a UUID" in details


def test_grpc_reads_are_audited(
    ingest: RunningIngest, stub: ingest_pb2_grpc.IngestServiceStub
) -> None:
    from sqlalchemy import text

    with ingest.client() as client:
        exam_id = new_exam(client)
    stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=_auth(ingest))
    stub.ListExamInstances(
        ingest_pb2.ListExamInstancesRequest(exam_id=exam_id), metadata=_auth(ingest)
    )
    with ingest.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, channel FROM audit_log WHERE resource_id = :id AND channel = 'grpc'"
            ),
            {"id": exam_id},
        ).all()
    assert [tuple(r) for r in rows] == [("read_exam", "grpc"), ("read_exam", "grpc")]
