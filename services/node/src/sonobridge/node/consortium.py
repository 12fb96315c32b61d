"""A consortium's institutions, people, probes and rosters, seeded through the REST APIs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sonobridge.common.auth import ROLES, LocalIssuer
from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.callers import parse_ae_title


@dataclass(frozen=True)
class Institution:
    """A hospital or township centre; `tier` is `township`, `county` or `provincial`.

    `served_by` names the institutions whose readers see this one's exams (the access policy).
    """

    id: str
    name: str
    tier: str
    served_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Person:
    """Someone who signs in: their user id, roles, home institution and argon2 password hash.

    No hash means no login page for them (`sonobridge users set-password` sets one).
    """

    user: str
    name: str
    roles: tuple[str, ...]
    institution: str
    password_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Device:
    """A handheld probe held by an institution, with the operators who scan with it."""

    serial: str
    model: str
    institution: str
    operators: tuple[str, ...] = ()
    manufacturer: str = "SonoBridge Synthetic"


@dataclass(frozen=True)
class Duty:
    """A reader on a worklist's roster."""

    worklist: str
    user: str
    role: str = "primary"


@dataclass(frozen=True)
class Consortium:
    """Everything county IT sets up once: institutions, people, probes, rosters, DIMSE callers."""

    id: str
    institutions: tuple[Institution, ...]
    people: tuple[Person, ...]
    devices: tuple[Device, ...]
    duties: tuple[Duty, ...] = ()
    # Calling AE titles of devices that push DIMSE -> the institution whose data they send.
    dimse_callers: dict[str, str] = field(default_factory=dict)
    engineers_region: str = "county"
    extra: dict[str, Any] = field(default_factory=dict)

    def person(self, user: str) -> Person:
        """Return the person with user id `user`."""
        for p in self.people:
            if p.user == user:
                return p
        raise KeyError(f"no person {user!r} in consortium {self.id}")

    def with_role(self, role: str) -> list[Person]:
        """Return the people holding `role`."""
        return [p for p in self.people if role in p.roles]

    def token(self, issuer: LocalIssuer, user: str, ttl_seconds: int = 8 * 3600) -> str:
        """Issue a bearer token for one of the consortium's people."""
        p = self.person(user)
        return issuer.issue(
            p.user,
            p.roles,
            p.institution,
            consortium=self.id,
            name=p.name,
            ttl_seconds=ttl_seconds,
        )

    def check(self) -> None:
        """Raise ValueError naming the first inconsistency (unknown institution, role, person)."""
        known = {i.id for i in self.institutions}
        users = {p.user for p in self.people}
        for i in self.institutions:
            if i.tier not in ("township", "county", "provincial"):
                raise ValueError(f"{i.id}: unknown tier {i.tier!r}")
            for reader in i.served_by:
                if reader not in known or reader == i.id:
                    raise ValueError(f"{i.id}: served_by names {reader!r}, not another institution")
        for p in self.people:
            if p.institution not in known:
                raise ValueError(f"{p.user}: unknown institution {p.institution!r}")
            bad = set(p.roles) - ROLES
            if bad:
                raise ValueError(f"{p.user}: unknown roles {sorted(bad)}")
        for d in self.devices:
            if d.institution not in known:
                raise ValueError(f"device {d.serial}: unknown institution {d.institution!r}")
            for op in d.operators:
                if op not in users:
                    raise ValueError(f"device {d.serial}: unknown operator {op!r}")
        for duty in self.duties:
            if duty.user not in users:
                raise ValueError(f"roster {duty.worklist}: unknown reader {duty.user!r}")
            if duty.role not in ("primary", "backup"):
                raise ValueError(f"roster {duty.worklist}: role must be primary or backup")
        for title, institution in self.dimse_callers.items():
            try:
                canonical = parse_ae_title(title)
            except InvalidInput as exc:
                raise ValueError(f"DIMSE caller {title!r}: {exc.detail}") from exc
            if canonical != title:
                raise ValueError(f"DIMSE caller {title!r}: write it without outer spaces")
            if institution not in known:
                raise ValueError(f"DIMSE caller {title}: unknown institution {institution!r}")

    def institution_registry(self) -> dict[str, Any]:
        """Return the access policy's institution registry (ACCESS__INSTITUTIONS_FILE form)."""
        return {
            "institutions": [
                {"id": i.id, "tier": i.tier, "consortium": self.id, "served_by": list(i.served_by)}
                for i in self.institutions
            ]
        }

    def write_institution_registry(self, path: Path) -> Path:
        """Write the institution registry as JSON to `path`; return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.institution_registry(), indent=2), encoding="utf-8")
        return path

    def to_json(self) -> str:
        """Serialise as the seed-file format read by `load`."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


def load(path: Path) -> Consortium:
    """Read a consortium seed file (JSON, the format `to_json` writes)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read consortium file {path}: {exc}") from exc
    try:
        consortium = Consortium(
            id=raw["id"],
            institutions=_institutions(raw["institutions"]),
            people=tuple(
                Person(**{**p, "roles": tuple(p["roles"])}) for p in raw.get("people", [])
            ),
            devices=tuple(
                Device(**{**d, "operators": tuple(d.get("operators", []))})
                for d in raw.get("devices", [])
            ),
            duties=tuple(Duty(**d) for d in raw.get("duties", [])),
            dimse_callers=dict(raw.get("dimse_callers", {})),
            engineers_region=raw.get("engineers_region", "county"),
            extra=raw.get("extra", {}),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"consortium file {path} is malformed: {exc}") from exc
    consortium.check()
    return consortium


def _institutions(raw: list[dict[str, Any]]) -> tuple[Institution, ...]:
    # Files written before `served_by` existed: the county hospitals read for every township.
    counties = tuple(i["id"] for i in raw if i.get("tier") == "county")
    return tuple(
        Institution(
            **{
                **i,
                "served_by": tuple(
                    i["served_by"]
                    if "served_by" in i
                    else (counties if i.get("tier") == "township" else ())
                ),
            }
        )
        for i in raw
    )


COUNTY = "county-hospital"
TOWNSHIPS = ("township-east", "township-west", "township-river")

# The three county worklists the demo's exams land on, each with one primary expert.
_DEMO_WORKLISTS = {
    "county-vascular": "dr-zhang",
    "county-thyroid": "dr-wang",
    "county-abdominal": "dr-chen",
    "county-general": "dr-chen",
    "county-urgent": "dr-zhang",
    "county-obstetric": "dr-chen",
    "county-cardiac": "dr-zhang",
    "county-audit": "dr-wang",
}


# The demo's accounts all log in with this password; only the demo sets it (see demo.py).
DEMO_PASSWORD = "qingshan-demo"  # noqa: S105 - the demo's published password, never a default


def demo_consortium() -> Consortium:
    """The demo consortium: a county hospital, three township centres, probes and experts."""
    institutions = (
        Institution(COUNTY, "Qingshan County People's Hospital", "county"),
        Institution("township-east", "Dongxi Township Health Centre", "township", (COUNTY,)),
        Institution("township-west", "Xishan Township Health Centre", "township", (COUNTY,)),
        Institution("township-river", "Hebian Township Health Centre", "township", (COUNTY,)),
    )
    people = [
        Person("county-admin", "County IT", ("admin",), COUNTY),
        Person("dr-zhang", "Dr Zhang (vascular)", ("expert",), COUNTY),
        Person("dr-wang", "Dr Wang (thyroid)", ("expert",), COUNTY),
        Person("dr-chen", "Dr Chen (abdominal)", ("expert",), COUNTY),
        Person("coord-liu", "Liu (follow-up coordinator)", ("coordinator",), COUNTY),
        Person("eng-zhao", "Zhao (biomedical engineer)", ("engineer",), COUNTY),
    ]
    devices = []
    for n, town in enumerate(TOWNSHIPS, start=1):
        nurse = f"nurse-{town.removeprefix('township-')}"
        people.append(Person(nurse, f"Nurse {n}", ("operator",), town))
        people.append(
            Person(f"dr-{town.removeprefix('township-')}", f"GP {n}", ("physician",), town)
        )
        devices.append(Device(f"PROBE-{n:02d}L", "SB-Linear-7", town, (nurse,)))
        devices.append(Device(f"PROBE-{n:02d}C", "SB-Convex-3", town, (nurse,)))
    duties = tuple(Duty(w, u) for w, u in _DEMO_WORKLISTS.items())
    return Consortium(
        id="qingshan-county",
        institutions=institutions,
        people=tuple(people),
        devices=tuple(devices),
        duties=duties,
        # Cart scanners that push DIMSE alongside the handheld probes' app uploads.
        dimse_callers={"EAST_US1": "township-east", "RIVER_US1": "township-river"},
    )


@dataclass
class SeedResult:
    """What seeding created and what was already there."""

    devices_created: list[str] = field(default_factory=list)
    devices_present: list[str] = field(default_factory=list)
    rosters: list[str] = field(default_factory=list)
    dimse_callers: list[str] = field(default_factory=list)


def seed(
    consortium: Consortium,
    urls: dict[str, str],
    admin_token: str,
    *,
    roster_days: int = 30,
    now: datetime | None = None,
    timeout: float = 30.0,
) -> SeedResult:
    """Register probes (maintenance), rosters (reporting) and DIMSE callers (ingest) by REST.

    Repeats are harmless: a probe already registered is left as it is, a roster and a DIMSE
    caller are replaced.
    Institutions and people have no registry service: they live in tokens and this file.
    """
    consortium.check()
    result = SeedResult()
    start = (now or datetime.now(UTC)) - timedelta(hours=1)
    end = start + timedelta(days=roster_days)
    headers = {"Authorization": f"Bearer {admin_token}"}
    # Imported by the seed, not with the module: `serve` reads the consortium file at start-up
    # and never seeds, and httpx (with its CLI's imports) costs it ~0.1 CPU s before ready.
    import httpx

    with httpx.Client(headers=headers, timeout=timeout) as client:
        for d in consortium.devices:
            response = client.post(
                f"{urls['maintenance']}/v1/devices",
                json={
                    "serial": d.serial,
                    "model": d.model,
                    "institution_id": d.institution,
                    "manufacturer": d.manufacturer,
                    "operators": list(d.operators),
                },
            )
            if response.status_code == 201:
                result.devices_created.append(d.serial)
            elif response.status_code == 409:
                result.devices_present.append(d.serial)
            else:
                raise RuntimeError(
                    f"registering {d.serial} failed: {response.status_code} {response.text}"
                )
        by_worklist: dict[str, list[Duty]] = {}
        for duty in consortium.duties:
            by_worklist.setdefault(duty.worklist, []).append(duty)
        for worklist, duties in by_worklist.items():
            shifts = [
                {
                    "user": duty.user,
                    "role": duty.role,
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                }
                for duty in duties
            ]
            response = client.put(
                f"{urls['reporting']}/v1/rosters/{worklist}", json={"shifts": shifts}
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"roster {worklist} failed: {response.status_code} {response.text}"
                )
            result.rosters.append(worklist)
        for title, institution in consortium.dimse_callers.items():
            response = client.put(
                f"{urls['ingest']}/v1/admin/dimse-callers/{quote(title, safe='')}",
                json={"institution_id": institution, "description": f"{consortium.id} seed"},
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(
                    f"DIMSE caller {title} failed: {response.status_code} {response.text}"
                )
            result.dimse_callers.append(title)
    return result


def node_settings_for(consortium: Consortium, data_dir: Path | None = None) -> dict[str, Any]:
    """Return the settings a consortium implies (with `data_dir`: its institution registry)."""
    engineers = [p.user for p in consortium.with_role("engineer")]
    settings: dict[str, Any] = {"ingest": {"consortium_id": consortium.id}}
    if data_dir is not None:
        registry = consortium.write_institution_registry(Path(data_dir) / "institutions.json")
        settings["common"] = {"access": {"institutions_file": str(registry)}}
    return settings | {
        "maintenance": {
            "regions": [
                {
                    "name": consortium.engineers_region,
                    "institutions": [i.id for i in consortium.institutions],
                    "engineers": engineers,
                    "escalation_contact": consortium.with_role("admin")[0].user,
                }
            ]
        },
    }
