"""gRPC IngestService: exam upload state and stored instances, read-only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import grpc

from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.grpc import principal_from_context
from sonobridge.common.inputs import parse_int
from sonobridge.ingest import handlers
from sonobridge.ingest.domain.model import ExamState
from sonobridge.ingest.handlers import ExamView, IngestDeps

_STATES = {
    ExamState.RECEIVING: ingest_pb2.EXAM_STATE_RECEIVING,
    ExamState.AWAITING_INSTANCES: ingest_pb2.EXAM_STATE_AWAITING_INSTANCES,
    ExamState.COMPLETED: ingest_pb2.EXAM_STATE_COMPLETED,
}
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def exam_message(view: ExamView) -> ingest_pb2.Exam:
    """Translate an exam view to the API message."""
    exam = view.row
    message = ingest_pb2.Exam(
        context=handlers.exam_context(exam),
        state=_STATES[ExamState(exam.state)],
        expected_instance_count=view.expected,
        received_instance_count=view.received,
        missing_sop_instance_uids=view.missing,
        received_bytes=view.received_bytes,
        manifest_sha256=exam.manifest_sha256 or "",
    )
    for field, value in (("created_at", exam.created_at), ("completed_at", exam.completed_at)):
        if value is not None:
            aware: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
            getattr(message, field).FromDatetime(aware)
    return message


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Translate gRPC calls to the same handlers REST uses."""

    def __init__(self, deps: IngestDeps, verifier: TokenVerifier) -> None:
        self.deps = deps
        self.verifier = verifier

    def GetExam(  # noqa: N802
        self, request: ingest_pb2.GetExamRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.GetExamResponse:
        principal = principal_from_context(context, self.verifier)
        view = handlers.get_exam(self.deps, principal, request.exam_id, channel="grpc")
        return ingest_pb2.GetExamResponse(exam=exam_message(view))

    def ListExamInstances(  # noqa: N802
        self, request: ingest_pb2.ListExamInstancesRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.ListExamInstancesResponse:
        principal = principal_from_context(context, self.verifier)
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        offset = parse_int(request.page_token or "0", name="page_token", reason="bad_page_token")
        rows, more = handlers.list_exam_instances(
            self.deps, principal, request.exam_id, offset, size
        )
        return ingest_pb2.ListExamInstancesResponse(
            instances=[handlers.instance_ref(r) for r in rows],
            next_page_token=str(offset + size) if more else "",
        )


def register(server: grpc.Server, deps: IngestDeps, verifier: TokenVerifier) -> Iterable[str]:
    """Add the ingest servicer to `server`; return its service name."""
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestServicer(deps, verifier), server)
    return [ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name]
