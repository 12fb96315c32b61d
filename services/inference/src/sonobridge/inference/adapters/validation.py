"""DeviceValidations in the inference database: states, expert labels and their audit records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.audit import AuditRecord
from sonobridge.common.sql_records import SqlAuditLog
from sonobridge.inference.adapters.orm import audit_log, device_validations, quality_labels
from sonobridge.inference.domain.validation import (
    DeviceModel,
    DeviceValidation,
    ExpertLabel,
    StateChange,
    ValidationState,
)

RESOURCE = "device-validation"


class SqlDeviceValidations:
    """Each call is its own short transaction, outside any exam's."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def find(self, model_name: str, device: DeviceModel) -> DeviceValidation | None:
        """Return the stored state, or None when nobody has promoted or demoted it."""
        t = device_validations
        with self.sessions() as session:
            row = session.execute(
                select(t).where(
                    t.c.model_name == model_name,
                    t.c.manufacturer == device.manufacturer,
                    t.c.device_model_name == device.model_name,
                )
            ).first()
        return None if row is None else _validation(row)

    def all(self) -> list[DeviceValidation]:
        """Return every stored state."""
        with self.sessions() as session:
            return [_validation(row) for row in session.execute(select(device_validations))]

    def change(self, change: StateChange) -> None:
        """Record the new state and its audit record (who, from, to, why) in one transaction."""
        t = device_validations
        key = (
            (t.c.model_name == change.model_name)
            & (t.c.manufacturer == change.device.manufacturer)
            & (t.c.device_model_name == change.device.model_name)
        )
        with self.sessions.begin() as session:
            session.execute(delete(t).where(key))
            session.execute(
                insert(t).values(
                    model_name=change.model_name,
                    manufacturer=change.device.manufacturer,
                    device_model_name=change.device.model_name,
                    state=change.to_state.value,
                    model_version=change.model_version,
                    changed_at=change.at,
                    changed_by=change.actor,
                    reason=change.reason,
                )
            )
            SqlAuditLog(session, audit_log).append(
                AuditRecord(
                    at=change.at,
                    actor=change.actor,
                    action=f"validation:{change.to_state.value}",
                    resource_type=RESOURCE,
                    resource_id=f"{change.model_name}|{change.device.key}",
                    outcome="ok",
                    detail=(
                        f"{change.model_name} {change.model_version} on {change.device.key}: "
                        f"{change.from_state.value} -> {change.to_state.value}: {change.reason}"
                    ),
                )
            )

    def add_labels(self, labels: Sequence[ExpertLabel]) -> None:
        """Keep expert quality labels; a label of the same instance and model replaces it."""
        t = quality_labels
        with self.sessions.begin() as session:
            for label in labels:
                # Delete then insert: the relabelled instance takes the newest id in the window.
                session.execute(
                    delete(t).where(
                        t.c.model_name == label.model_name,
                        t.c.sop_instance_uid == label.sop_instance_uid,
                    )
                )
                session.execute(
                    insert(t).values(
                        model_name=label.model_name,
                        manufacturer=label.device.manufacturer,
                        device_model_name=label.device.model_name,
                        sop_instance_uid=label.sop_instance_uid,
                        expert_fault=label.expert_fault,
                        model_flagged=label.model_flagged,
                        labelled_by=label.labelled_by,
                        labelled_at=label.labelled_at,
                    )
                )

    def window(self, model_name: str, device: DeviceModel, size: int) -> list[ExpertLabel]:
        """Return the newest `size` labels of a model on a device model, newest first."""
        t = quality_labels
        query = (
            select(t)
            .where(
                t.c.model_name == model_name,
                t.c.manufacturer == device.manufacturer,
                t.c.device_model_name == device.model_name,
            )
            .order_by(t.c.id.desc())
            .limit(size)
        )
        with self.sessions() as session:
            return [_label(row) for row in session.execute(query)]


def _validation(row: Row[Any]) -> DeviceValidation:
    v = row._mapping
    return DeviceValidation(
        model_name=v["model_name"],
        device=DeviceModel(v["manufacturer"], v["device_model_name"]),
        state=ValidationState(v["state"]),
        model_version=v["model_version"],
        changed_at=v["changed_at"],
        changed_by=v["changed_by"],
        reason=v["reason"],
    )


def _label(row: Row[Any]) -> ExpertLabel:
    v = row._mapping
    return ExpertLabel(
        model_name=v["model_name"],
        device=DeviceModel(v["manufacturer"], v["device_model_name"]),
        sop_instance_uid=v["sop_instance_uid"],
        expert_fault=v["expert_fault"],
        model_flagged=bool(v["model_flagged"]),
        labelled_by=v["labelled_by"],
        labelled_at=v["labelled_at"],
    )
