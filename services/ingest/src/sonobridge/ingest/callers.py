"""Use cases of the DIMSE caller registry: county IT registers calling AE titles per institution."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from sonobridge.common.auth import Principal
from sonobridge.common.problems import InvalidInput, NotFound
from sonobridge.ingest.adapters import repository as repo
from sonobridge.ingest.domain.callers import DimseCaller, parse_ae_title
from sonobridge.ingest.handlers import IngestDeps

ADMIN_ROLE = "admin"


def list_callers(deps: IngestDeps, principal: Principal) -> list[DimseCaller]:
    """Return every registered caller (admins only)."""
    principal.require_role(ADMIN_ROLE)
    with deps.sessions.begin() as session:
        return repo.list_dimse_callers(session)


def get_caller(deps: IngestDeps, principal: Principal, ae_title: str) -> DimseCaller:
    """Return one registered caller (admins only)."""
    principal.require_role(ADMIN_ROLE)
    title = parse_ae_title(ae_title)
    with deps.sessions.begin() as session:
        caller = repo.get_dimse_caller(session, title)
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
    except IntegrityError:
        # A concurrent first registration of the same title won the insert: this one updates.
        return caller, _put(deps, principal, caller)


def _put(deps: IngestDeps, principal: Principal, caller: DimseCaller) -> bool:
    with deps.sessions.begin() as session:
        created = repo.put_dimse_caller(session, caller, by=principal.user, at=deps.clock())
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action="register_dimse_caller",
            resource_type="dimse_caller",
            resource_id=caller.ae_title,
            institution_id=caller.institution_id,
            channel="rest",
            outcome="created" if created else "replaced",
        )
    return created


def remove_caller(deps: IngestDeps, principal: Principal, ae_title: str) -> None:
    """Unregister a calling AE title; its later associations are refused."""
    principal.require_role(ADMIN_ROLE)
    title = parse_ae_title(ae_title)
    with deps.sessions.begin() as session:
        if not repo.delete_dimse_caller(session, title):
            raise NotFound(f"no DIMSE caller {title!r} is registered")
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action="remove_dimse_caller",
            resource_type="dimse_caller",
            resource_id=title,
            institution_id=None,
            channel="rest",
        )


def resolve_caller(deps: IngestDeps, calling_ae_title: str) -> DimseCaller | None:
    """Return the registration of a calling AE title as received, or None when unknown."""
    try:
        title = parse_ae_title(calling_ae_title)
    except InvalidInput:
        return None
    with deps.sessions.begin() as session:
        return repo.get_dimse_caller(session, title)
