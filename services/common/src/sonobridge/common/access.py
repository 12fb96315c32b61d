"""The one access policy: who may read and who may change which institution's patient data."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden
from sonobridge.common.settings import AccessSettings


class Action(StrEnum):
    """What the caller wants to do with an institution's patient data."""

    READ = "read"
    WRITE = "write"


class Reach(StrEnum):
    """How far a role reaches, ordered from nothing to everything."""

    NONE = "none"
    OWN = "own"
    SERVED = "served"
    ALL = "all"


class Tier(StrEnum):
    """Where an institution stands in the referral chain."""

    TOWNSHIP = "township"
    COUNTY = "county"
    PROVINCIAL = "provincial"


_ORDER = {Reach.NONE: 0, Reach.OWN: 1, Reach.SERVED: 2, Reach.ALL: 3}

# The rule, as data: role -> (read reach, write reach). A caller holding several roles gets the
# widest reach of any of them. "served" is the caller's own institution plus every institution
# that lists it in `served_by`, so township staff (whom nobody lists) reach only their own.
# Nobody but admin and service writes outside their own institution; engineers see probes,
# never patients.
ROLE_REACH: Mapping[str, tuple[Reach, Reach]] = {
    "operator": (Reach.OWN, Reach.OWN),
    "physician": (Reach.SERVED, Reach.OWN),
    "expert": (Reach.SERVED, Reach.OWN),
    "coordinator": (Reach.SERVED, Reach.OWN),
    "engineer": (Reach.NONE, Reach.NONE),
    "admin": (Reach.ALL, Reach.ALL),
    "service": (Reach.ALL, Reach.ALL),
}


@dataclass(frozen=True)
class Institution:
    """One institution of the registry: its tier, consortium and who reads for it."""

    id: str
    tier: Tier
    consortium: str
    served_by: frozenset[str] = frozenset()


class InstitutionRegistry:
    """The institutions the policy knows, and which ones each reads for."""

    def __init__(self, institutions: Iterable[Institution] = ()) -> None:
        self._by_id: dict[str, Institution] = {}
        for inst in institutions:
            if inst.id in self._by_id:
                raise ValueError(f"institution {inst.id!r} is listed twice")
            self._by_id[inst.id] = inst
        served: dict[str, set[str]] = {}
        for inst in self._by_id.values():
            for reader in inst.served_by:
                served.setdefault(reader, set()).add(inst.id)
        self._served = {reader: frozenset(ids) for reader, ids in served.items()}

    def __contains__(self, institution: object) -> bool:
        return institution in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, institution: str) -> Institution | None:
        """Return the institution with id `institution`, or None."""
        return self._by_id.get(institution)

    def served_by(self, reader: str) -> frozenset[str]:
        """Return `reader` plus every institution of its consortium that lists it in served_by."""
        home = self._by_id.get(reader)
        ids = self._served.get(reader, frozenset())
        if home is not None:
            # A served_by entry never carries a reader across consortia.
            ids = frozenset(i for i in ids if self._by_id[i].consortium == home.consortium)
        return ids | {reader}

    def to_dict(self) -> dict[str, Any]:
        """Return the file form read by `from_dict`."""
        return {
            "institutions": [
                {
                    "id": i.id,
                    "tier": i.tier.value,
                    "consortium": i.consortium,
                    "served_by": sorted(i.served_by),
                }
                for i in self._by_id.values()
            ]
        }

    @classmethod
    def from_dict(cls, raw: Any) -> InstitutionRegistry:
        """Build a registry from `{"institutions": [{id, tier, consortium, served_by}]}`."""
        if not isinstance(raw, dict) or not isinstance(raw.get("institutions"), list):
            raise ValueError("institution registry needs an 'institutions' list")
        institutions = []
        for n, item in enumerate(raw["institutions"]):
            if not isinstance(item, dict):
                raise ValueError(f"institution #{n} is not an object")
            try:
                ident, tier, consortium = item["id"], Tier(item["tier"]), item["consortium"]
            except (KeyError, ValueError) as exc:
                raise ValueError(f"institution #{n} is malformed: {exc}") from exc
            served_by = item.get("served_by", [])
            if (
                not isinstance(ident, str)
                or not ident
                or not isinstance(consortium, str)
                or not isinstance(served_by, list)
                or not all(isinstance(s, str) for s in served_by)
            ):
                raise ValueError(f"institution #{n} is malformed")
            institutions.append(Institution(ident, tier, consortium, frozenset(served_by)))
        return cls(institutions)

    @classmethod
    def load(cls, path: Path) -> InstitutionRegistry:
        """Read a registry file (JSON, the form `to_dict` gives)."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read institution registry {path}: {exc}") from exc
        return cls.from_dict(raw)


@dataclass(frozen=True)
class Reachable:
    """What one caller reaches for one action: institutions (None: every one) in a consortium."""

    institutions: frozenset[str] | None
    consortium: str | None = None

    @property
    def everything(self) -> bool:
        """True when nothing is filtered out."""
        return self.institutions is None

    def admits(self, institution: str | None, consortium: str | None = None) -> bool:
        """True when data owned by `institution` (of `consortium`, if known) is reached."""
        if self.institutions is None:
            return True
        if not institution or institution not in self.institutions:
            return False
        # Institution ids are only unique within a consortium: both sides must agree when known.
        return not (consortium and self.consortium and consortium != self.consortium)


class AccessPolicy:
    """Answers "may this caller read/change data of that institution" the same way everywhere."""

    def __init__(self, registry: InstitutionRegistry | None = None) -> None:
        # Without a registry nobody is known to serve anyone: "served" collapses to "own".
        self.registry = registry or InstitutionRegistry()

    @classmethod
    def from_file(cls, path: Path | None) -> AccessPolicy:
        """Build the policy from a registry file, or the secure default when there is none."""
        return cls(InstitutionRegistry.load(path) if path else None)

    @classmethod
    def from_settings(cls, settings: AccessSettings) -> AccessPolicy:
        """Build the policy from the `access` settings section (ACCESS__INSTITUTIONS_FILE)."""
        return cls.from_file(settings.institutions_file)

    def reach(self, principal: Principal, action: Action) -> Reach:
        """Return the widest reach any of the caller's roles gives for `action`."""
        index = 0 if action is Action.READ else 1
        best = Reach.NONE
        for role in principal.roles:
            reach = ROLE_REACH.get(role, (Reach.NONE, Reach.NONE))[index]
            if _ORDER[reach] > _ORDER[best]:
                best = reach
        return best

    def institutions(self, principal: Principal, action: Action) -> frozenset[str] | None:
        """Return the institutions the caller may act on: None means every one."""
        reach = self.reach(principal, action)
        if reach is Reach.ALL:
            return None
        if reach is Reach.NONE or not principal.institution:
            return frozenset()
        if reach is Reach.OWN:
            return frozenset({principal.institution})
        return self.registry.served_by(principal.institution)

    def reachable(self, principal: Principal, action: Action) -> Reachable:
        """Return what the caller reaches for `action`, for queries to filter on."""
        institutions = self.institutions(principal, action)
        return Reachable(institutions, None if institutions is None else principal.consortium)

    def readable_institutions(self, principal: Principal) -> frozenset[str] | None:
        """Return the institutions whose data the caller may read (None: all), for queries."""
        return self.institutions(principal, Action.READ)

    def writable_institutions(self, principal: Principal) -> frozenset[str] | None:
        """Return the institutions whose data the caller may change (None: all)."""
        return self.institutions(principal, Action.WRITE)

    def may(
        self,
        principal: Principal,
        action: Action,
        owner_institution: str | None,
        owner_consortium: str | None = None,
    ) -> bool:
        """Return True when the caller may `action` data owned by that institution."""
        return self.reachable(principal, action).admits(owner_institution, owner_consortium)

    def may_at_all(self, principal: Principal, action: Action) -> bool:
        """Return True when the caller may `action` some institution's data."""
        allowed = self.institutions(principal, action)
        return allowed is None or bool(allowed)

    def require(
        self,
        principal: Principal,
        action: Action,
        owner_institution: str | None,
        owner_consortium: str | None = None,
    ) -> None:
        """Raise Forbidden unless the caller may `action` data owned by that institution."""
        if not self.may(principal, action, owner_institution, owner_consortium):
            raise Forbidden(f"may not {action.value} data of institution {owner_institution}")

    def require_any(self, principal: Principal, action: Action) -> None:
        """Raise Forbidden unless the caller may `action` some institution's data."""
        if not self.may_at_all(principal, action):
            raise Forbidden(f"roles {sorted(principal.roles)} may not {action.value} patient data")
