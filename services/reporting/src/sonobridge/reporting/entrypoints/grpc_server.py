"""gRPC ReportingService: read-only views of reads, worklists and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import json_format

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.contract_enums import contract_values
from sonobridge.common.exam_types import exam_type_value
from sonobridge.common.grpc import (
    AuthenticatedServicer,
    Registration,
    registration,
)
from sonobridge.common.inputs import page_size
from sonobridge.common.problems import InvalidInput
from sonobridge.common.timestamps import set_times
from sonobridge.reporting.domain.reads import ReadState
from sonobridge.reporting.entrypoints import views
from sonobridge.reporting.handlers import reads, reports
from sonobridge.reporting.ports import Dependencies

_STATE_NAMES = contract_values(ReadState, reporting_pb2.ReadState, "READ_STATE_")
_STATE_BY_PB = {v: k.value for k, v in _STATE_NAMES.items()}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _finding_pb(finding: dict[str, Any]) -> events_pb2.Finding:
    return json_format.ParseDict(finding, events_pb2.Finding(), ignore_unknown_fields=True)


def _read_pb(view: dict[str, Any]) -> reporting_pb2.Read:
    message = reporting_pb2.Read(
        read_id=view["read_id"],
        context=events_pb2.ExamContext(
            exam_id=view["exam_id"],
            study_instance_uid=view["study_instance_uid"],
            institution_id=view["institution_id"],
            operator_id=view.get("operator_id", ""),
            device_serial=view.get("device_serial", ""),
            exam_type=exam_type_value(view["exam_type"]),
            patient_ref=view.get("patient_ref", ""),
        ),
        route=events_pb2.ReadRoute.Value(f"READ_ROUTE_{view['route'].upper()}"),  # type: ignore[arg-type]
        worklist=view["worklist"],
        priority=events_pb2.ReadPriority.Value(f"READ_PRIORITY_{view['priority'].upper()}"),  # type: ignore[arg-type]
        state=_STATE_NAMES[ReadState(view["state"])],
        assigned_to=view["assigned_to"] or "",
        overdue=view["overdue"],
        report_id=view["report_id"] or "",
        policy_version=view["policy_version"],
        reason=view["reason"],
    )
    set_times(message, **{f: _time(view.get(f)) for f in ("created_at", "due_at", "signed_at")})
    if view.get("exam_quality"):
        json_format.ParseDict(
            view["exam_quality"], message.exam_quality, ignore_unknown_fields=True
        )
    for finding in view.get("ai_findings", []):
        message.ai_findings.append(_finding_pb(finding))
    return message


class ReportingServicer(
    AuthenticatedServicer[Dependencies], reporting_pb2_grpc.ReportingServiceServicer
):
    """Calls the same use cases as REST, with the caller's token from metadata."""

    def GetRead(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        principal = self.principal(context)
        if not request.read_id:
            raise InvalidInput("read_id is required")
        detail = reads.view_read(self.deps, principal, request.read_id)
        view = views.read_detail(detail, self.deps.clock(), self.deps.settings.wado_base_url)
        return reporting_pb2.GetReadResponse(read=_read_pb(view))

    def ListWorklist(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        principal = self.principal(context)
        size = page_size(request.page_size, default=50, maximum=500)
        states = [_STATE_BY_PB[s] for s in request.states if s in _STATE_BY_PB] or None
        page, following = reads.list_reads(
            self.deps,
            principal,
            worklist=request.worklist or None,
            states=states,
            assigned_to=request.assigned_to or None,
            cursor=request.page_token or None,
            limit=size,
        )
        now = self.deps.clock()
        return reporting_pb2.ListWorklistResponse(
            reads=[_read_pb(views.read_summary(r, now)) for r in page],
            next_page_token=following or "",
        )

    def GetReport(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        principal = self.principal(context)
        if not request.report_id:
            raise InvalidInput("report_id is required")
        chosen = reports.get_report(self.deps, principal, request.report_id, request.version)
        view = views.chosen_view(chosen)
        report = reporting_pb2.Report(
            report_id=view["report_id"],
            read_id=view["read_id"],
            version=view["version"],
            signed_by=view["signed_by"],
            conclusion=view["conclusion"],
            pdf_object_key=view["pdf_object_key"],
            json_object_key=view["json_object_key"],
            amended_from_version=view["amended_from_version"],
            superseded=view["superseded"],
            findings=[_finding_pb(f) for f in view["findings"]],
            ai_agreement=[
                events_pb2.AiAgreement(
                    finding_code=a["finding_code"],
                    model_name=a["model_name"],
                    model_version=a["model_version"],
                    verdict=events_pb2.AiVerdict.Value(f"AI_VERDICT_{a['verdict'].upper()}"),  # type: ignore[arg-type]
                    comment=a["comment"],
                )
                for a in view["ai_agreement"]
            ],
        )
        report.context.study_instance_uid = view["study_instance_uid"]
        report.context.institution_id = view["institution_id"]
        set_times(report, signed_at=_time(view["signed_at"]))
        return reporting_pb2.GetReportResponse(report=report)


def register(deps: Dependencies, verifier: TokenVerifier) -> Registration:
    """Return the create_grpc_server register callback for this service."""
    return registration(
        reporting_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingServicer(deps, verifier),
        reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name,
    )
