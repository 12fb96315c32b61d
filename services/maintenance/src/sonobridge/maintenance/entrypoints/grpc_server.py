"""gRPC MaintenanceService: translate requests, call the handlers, map results."""

from __future__ import annotations

import math
from typing import Any

import grpc

from sonobridge.api.maintenance.v1 import maintenance_pb2, maintenance_pb2_grpc
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.grpc import (
    AuthenticatedServicer,
    Registration,
    registration,
)
from sonobridge.common.inputs import INT32_MAX, page_size
from sonobridge.common.timestamps import aware
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import TelemetrySample
from sonobridge.maintenance.entrypoints.grpc_views import device_pb, source_of, status_of, ticket_pb
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import list_devices
from sonobridge.maintenance.handlers.telemetry import record_telemetry
from sonobridge.maintenance.handlers.tickets import get_ticket, open_ticket, shown_to

SERVICE_NAME = maintenance_pb2.DESCRIPTOR.services_by_name["MaintenanceService"].full_name


class MaintenanceServicer(
    AuthenticatedServicer[Dependencies], maintenance_pb2_grpc.MaintenanceServiceServicer
):
    """Implements sonobridge.api.maintenance.v1.MaintenanceService."""

    def OpenTicket(  # noqa: N802
        self, request: maintenance_pb2.OpenTicketRequest, context: grpc.ServicerContext
    ) -> maintenance_pb2.OpenTicketResponse:
        principal = self.principal(context)
        if not request.device_serial:
            raise InvalidRequest("device_serial is required")
        source = source_of(request.source)
        ticket, created = open_ticket(
            self.deps,
            principal,
            device_serial=request.device_serial,
            symptom=request.symptom,
            institution_id=request.institution_id,
            source=source,
            evidence_keys=list(request.evidence_object_keys),
            opened_by=request.opened_by,
            idempotency_key=request.request_id,
        )
        return maintenance_pb2.OpenTicketResponse(
            ticket=ticket_pb(shown_to(self.deps, principal, ticket), self.deps.clock()),
            created=created,
        )

    def GetTicket(  # noqa: N802
        self, request: maintenance_pb2.GetTicketRequest, context: grpc.ServicerContext
    ) -> maintenance_pb2.GetTicketResponse:
        principal = self.principal(context)
        if not request.ticket_id:
            raise InvalidRequest("ticket_id is required")
        ticket = get_ticket(self.deps, principal, request.ticket_id)
        return maintenance_pb2.GetTicketResponse(
            ticket=ticket_pb(shown_to(self.deps, principal, ticket), self.deps.clock())
        )

    def ListDevices(  # noqa: N802
        self, request: maintenance_pb2.ListDevicesRequest, context: grpc.ServicerContext
    ) -> maintenance_pb2.ListDevicesResponse:
        principal = self.principal(context)
        status = status_of(request.status)
        views, cursor = list_devices(
            self.deps,
            principal,
            institution_id=request.institution_id,
            status=status,
            after=request.page_token,
            limit=page_size(request.page_size, default=100, maximum=1000),
        )
        return maintenance_pb2.ListDevicesResponse(
            devices=[device_pb(v) for v in views],
            next_page_token=cursor,
        )

    def RecordTelemetry(  # noqa: N802
        self, request: maintenance_pb2.RecordTelemetryRequest, context: grpc.ServicerContext
    ) -> maintenance_pb2.RecordTelemetryResponse:
        principal = self.principal(context)
        if not request.device_serial:
            raise InvalidRequest("device_serial is required")
        samples = []
        for sample in request.samples:
            if not sample.HasField("recorded_at"):
                raise InvalidRequest("every sample needs recorded_at")
            extra: dict[str, Any] = dict(sample.extra) if sample.HasField("extra") else {}
            drops = extra.get("drops", 0)
            # Struct numbers are doubles: NaN, infinities and 1e300 are all on the wire.
            if (
                not isinstance(drops, int | float)
                or not math.isfinite(drops)
                or not 0 <= drops <= INT32_MAX
                or drops != int(drops)
            ):
                raise InvalidRequest("extra.drops must be a non-negative whole number")
            try:
                recorded_at = aware(sample.recorded_at)
                scan_seconds = sample.scan_time.ToTimedelta().total_seconds()
            except (ValueError, OverflowError) as exc:
                raise InvalidRequest("recorded_at or scan_time is out of range") from exc
            samples.append(
                TelemetrySample(
                    recorded_at=recorded_at,
                    battery_percent=sample.battery_percent,
                    temperature_c=sample.probe_temperature_celsius,
                    drops=int(drops),
                    scan_seconds=scan_seconds,
                    firmware_version=sample.firmware_version,
                    error_codes=tuple(sample.error_codes),
                )
            )
        result = record_telemetry(
            self.deps, principal, device_serial=request.device_serial, samples=samples
        )
        return maintenance_pb2.RecordTelemetryResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            opened_ticket_ids=result.opened_ticket_ids,
        )


def register(deps: Dependencies, verifier: TokenVerifier) -> Registration:
    """Return a `register` callback for create_grpc_server."""
    return registration(
        maintenance_pb2_grpc.add_MaintenanceServiceServicer_to_server,
        MaintenanceServicer(deps, verifier),
        SERVICE_NAME,
    )
