"""The DIMSE caller registry: county IT registers calling AE titles per institution."""

from __future__ import annotations

from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.problems import InvalidInput, NotFound
from sonobridge.ingest.domain.callers import DimseCaller, parse_ae_title
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.ports import Collision

ADMIN_ROLE = "admin"


def list_callers(deps: IngestDeps, principal: Principal) -> list[DimseCaller]:
    """Return every registered caller (admins only)."""
    principal.require_role(ADMIN_ROLE)
    with deps.unit() as work:
        return work.callers.all()


def get_caller(deps: IngestDeps, principal: Principal, ae_title: str) -> DimseCaller:
    """Return one registered caller (admins only)."""
    principal.require_role(ADMIN_ROLE)
    title = parse_ae_title(ae_title)
    with deps.unit() as work:
        caller = work.callers.get(title)
    if caller is None:
        raise NotFound(f"no DIMSE caller {title!r} is registered")
    return caller


def register_caller(
    deps: IngestDeps,
    principal: Principal,
    ae_title: str,
    institution_id: str,
    description: str = "",
) -> tuple[DimseCaller, bool]:
    """Register or re-point a calling AE title; return it and whether it was new."""
    principal.require_role(ADMIN_ROLE)
    caller = DimseCaller(parse_ae_title(ae_title), institution_id.strip(), description.strip())
    try:
        return caller, _put(deps, principal, caller)
    except Collision:
        # A concurrent first registration of the same title won the insert: this one updates.
        return caller, _put(deps, principal, caller)


def _put(deps: IngestDeps, principal: Principal, caller: DimseCaller) -> bool:
    with deps.unit() as work:
        created = work.callers.put(caller, by=principal.user, at=deps.clock())
        work.audit.append(
            audit_record(
                at=deps.clock(),
                actor=principal,
                action="register_dimse_caller",
                resource_type="dimse_caller",
                resource_id=caller.ae_title,
                institution_id=caller.institution_id,
                channel="rest",
                outcome="created" if created else "replaced",
            )
        )
    return created


def remove_caller(deps: IngestDeps, principal: Principal, ae_title: str) -> None:
    """Unregister a calling AE title; its later associations are refused."""
    principal.require_role(ADMIN_ROLE)
    title = parse_ae_title(ae_title)
    with deps.unit() as work:
        if not work.callers.delete(title):
            raise NotFound(f"no DIMSE caller {title!r} is registered")
        work.audit.append(
            audit_record(
                at=deps.clock(),
                actor=principal,
                action="remove_dimse_caller",
                resource_type="dimse_caller",
                resource_id=title,
                institution_id=None,
                channel="rest",
            )
        )


def resolve_caller(deps: IngestDeps, calling_ae_title: str) -> DimseCaller | None:
    """Return the registration of a calling AE title as received, or None when unknown."""
    try:
        title = parse_ae_title(calling_ae_title)
    except InvalidInput:
        return None
    with deps.unit() as work:
        return work.callers.get(title)
