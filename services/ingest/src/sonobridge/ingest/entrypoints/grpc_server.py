"""gRPC IngestService: exam upload state and stored instances, read-only."""

from __future__ import annotations

from typing import Protocol

import grpc

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.grpc import (
    AuthenticatedServicer,
    Registration,
    registration,
)
from sonobridge.common.inputs import page_size, parse_int
from sonobridge.ingest.domain.records import Exam, Instance
from sonobridge.ingest.handlers import IngestDeps, exams, reads
from sonobridge.ingest.handlers.exams import ExamView

DEFAULT_PAGE = 100
MAX_PAGE = 1000


class Messages(Protocol):
    """The protobuf mapping the servicer answers with; bootstrap passes adapters.messages."""

    def exam_message(
        self, exam: Exam, *, expected: int, received: int, missing: list[str], received_bytes: int
    ) -> ingest_pb2.Exam: ...
    def instance_ref(self, instance: Instance) -> events_pb2.InstanceRef: ...


def exam_message(messages: Messages, view: ExamView) -> ingest_pb2.Exam:
    """Translate an exam view to the API message."""
    return messages.exam_message(
        view.exam,
        expected=view.expected,
        received=view.received,
        missing=view.missing,
        received_bytes=view.received_bytes,
    )


class IngestServicer(AuthenticatedServicer[IngestDeps], ingest_pb2_grpc.IngestServiceServicer):
    """Translate gRPC calls to the same handlers REST uses."""

    def __init__(self, deps: IngestDeps, verifier: TokenVerifier, messages: Messages) -> None:
        super().__init__(deps, verifier)
        self.messages = messages

    def GetExam(  # noqa: N802
        self, request: ingest_pb2.GetExamRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.GetExamResponse:
        principal = self.principal(context)
        view = exams.get_exam(self.deps, principal, request.exam_id, channel="grpc")
        return ingest_pb2.GetExamResponse(exam=exam_message(self.messages, view))

    def ListExamInstances(  # noqa: N802
        self, request: ingest_pb2.ListExamInstancesRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.ListExamInstancesResponse:
        principal = self.principal(context)
        size = page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        offset = parse_int(request.page_token or "0", name="page_token", reason="bad_page_token")
        found, more = reads.list_exam_instances(self.deps, principal, request.exam_id, offset, size)
        return ingest_pb2.ListExamInstancesResponse(
            instances=[self.messages.instance_ref(i) for i in found],
            next_page_token=str(offset + size) if more else "",
        )


def register(deps: IngestDeps, verifier: TokenVerifier, messages: Messages) -> Registration:
    """Return the create_grpc_server register callback for the ingest servicer."""
    return registration(
        ingest_pb2_grpc.add_IngestServiceServicer_to_server,
        IngestServicer(deps, verifier, messages),
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
    )
