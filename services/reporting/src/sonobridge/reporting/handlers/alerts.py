"""Follow-up alerts and the notification feed."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from sonobridge.common.access import Action
from sonobridge.common.auth import Principal
from sonobridge.common.inputs import parse_int
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.domain.records import Alert, Notification
from sonobridge.reporting.handlers.scope import audit
from sonobridge.reporting.ports import Dependencies, Work

ALERT_ACTIONS = ("acknowledge", "close")


def _alert_scope(deps: Dependencies, principal: Principal) -> frozenset[str] | None:
    if not principal.has_role("coordinator", "physician", "expert", "admin"):
        raise Forbidden("follow-up alerts are for coordinators, physicians and admins")
    return deps.access.readable_institutions(principal)


def list_alerts(
    deps: Dependencies, principal: Principal, states: Sequence[str] | None
) -> list[Alert]:
    """Return follow-up alerts of the institutions the caller reads for."""
    scope = _alert_scope(deps, principal)
    with deps.unit() as work:
        repo = work.reporting
        alerts = repo.alerts(institutions=scope, states=states or None)
        audit(repo, deps, principal, "list_alerts", detail=f"n={len(alerts)}")
    return alerts


def may_change_alerts(principal: Principal) -> None:
    """Raise Forbidden unless the caller coordinates follow-up."""
    if not principal.has_role("coordinator", "admin"):
        raise Forbidden("only a follow-up coordinator may acknowledge or close alerts")


def change_alert(
    work: Work,
    deps: Dependencies,
    principal: Principal,
    alert_id: str,
    action: str,
    note: str = "",
) -> Alert:
    """Acknowledge or close a follow-up alert (coordinators of its institution)."""
    may_change_alerts(principal)
    now = deps.clock()
    repo = work.reporting
    alert = repo.alert(alert_id)
    if alert is None or not deps.access.may(principal, Action.READ, alert.institution):
        raise NotFound(f"no alert {alert_id}")
    deps.access.require(principal, Action.WRITE, alert.institution)
    if action == "acknowledge":
        if alert.state != "open":
            raise Conflict(f"alert is {alert.state}; only open alerts are acknowledged")
        repo.update_alert(
            alert_id,
            state="acknowledged",
            acknowledged_by=principal.user,
            acknowledged_at=now,
            note=note or alert.note,
        )
    elif action == "close":
        if alert.state == "closed":
            raise Conflict("alert is already closed")
        repo.update_alert(
            alert_id,
            state="closed",
            closed_by=principal.user,
            closed_at=now,
            note=note or alert.note,
        )
    else:
        raise InvalidInput(f"unknown alert action {action!r}")
    audit(
        repo,
        deps,
        principal,
        f"alert_{action}",
        read_id=alert.read_id,
        report_id=alert.report_id,
        detail=note,
    )
    fresh = repo.alert(alert_id)
    assert fresh is not None
    return fresh


def encode_cursor(value: int) -> str:
    """Return an opaque cursor for a position."""
    return base64.urlsafe_b64encode(str(value).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """Return the position in an opaque cursor; InvalidInput when it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    # Bounded: a huge number would overflow the database's integer on the way in.
    return parse_int(text, name="cursor", reason="invalid_cursor")


def notifications(
    deps: Dependencies, principal: Principal, after: int, limit: int
) -> list[Notification]:
    """Return the caller's notifications after a position, oldest first."""
    with deps.unit() as work:
        return work.reporting.notifications_after(
            user=principal.user,
            roles=principal.roles,
            institution=principal.institution,
            after=after,
            limit=limit,
        )
