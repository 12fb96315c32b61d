"""VersionComparisons in the inference database: stored verdicts joined to expert labels."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.inference.adapters.orm import quality_labels, quality_verdicts
from sonobridge.inference.domain.comparison import LabelledVerdict
from sonobridge.inference.domain.exams import InstanceVerdict
from sonobridge.inference.domain.validation import DeviceModel, ExpertLabel


class SqlVersionComparisons:
    """Each call is its own short read, outside any exam's transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def labelled(self, model_name: str, device: DeviceModel | None = None) -> list[LabelledVerdict]:
        """Return each labelled instance's verdict per version of a model (one device, or all).

        An expert labels an instance, not a model: the newest label of the instance counts,
        whichever gating model it was filed for, and is judged as a label of `model_name`.
        """
        lb, v = quality_labels, quality_verdicts
        query = (
            select(
                lb.c.id,
                lb.c.manufacturer,
                lb.c.device_model_name,
                lb.c.expert_fault,
                lb.c.labelled_by,
                lb.c.labelled_at,
                v.c.model_version,
                v.c.stage,
                v.c.sop_instance_uid,
                v.c.manufacturer.label("verdict_manufacturer"),
                v.c.device_model_name.label("verdict_device_model_name"),
                v.c.flagged,
                v.c.reason,
            )
            .join(v, v.c.sop_instance_uid == lb.c.sop_instance_uid)
            .where(v.c.model_name == model_name)
            .order_by(lb.c.id)
        )
        if device is not None:
            query = query.where(
                lb.c.manufacturer == device.manufacturer,
                lb.c.device_model_name == device.model_name,
            )
        newest: dict[tuple[str, str], LabelledVerdict] = {}
        with self.sessions() as session:
            for row in session.execute(query):
                labelled_on = DeviceModel(row.manufacturer, row.device_model_name)
                seen_on = DeviceModel(row.verdict_manufacturer, row.verdict_device_model_name)
                label = ExpertLabel(
                    model_name=model_name,
                    device=labelled_on,
                    sop_instance_uid=row.sop_instance_uid,
                    expert_fault=row.expert_fault,
                    model_flagged=bool(row.flagged),
                    labelled_by=row.labelled_by,
                    labelled_at=row.labelled_at,
                )
                verdict = InstanceVerdict(
                    model_name,
                    row.model_version,
                    row.stage,
                    row.sop_instance_uid,
                    seen_on.key,
                    bool(row.flagged),
                    row.reason,
                )
                # Rows come oldest label first, so a later label of the instance replaces it.
                newest[(row.sop_instance_uid, row.model_version)] = LabelledVerdict(verdict, label)
        return list(newest.values())
