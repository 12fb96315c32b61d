"""Authorization matrix: every route of every channel x bad tokens and x role x institution.

The single-node edition runs once for the module with the demo consortium (townships served by
the county hospital). Township-river and township-east each get an exam with an instance through
the real REST API, completed so inference and reporting pick it up. Routes come from the four
services' /openapi.json (DICOMweb included) and the gRPC service descriptors; DIMSE is a real
pynetdicom association. Expected outcomes come from EXPECTED below, written from the rule in the
README, never from the policy code. A leak is a 2xx (or data of an institution the caller may not
read) where the table says deny; the suite asserts there are none.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pydicom
import pytest
from cryptography.hazmat.primitives import serialization
from ingest.ingest_support import app_upload, synthetic_instance, tus_create
from pydicom.uid import generate_uid
from pynetdicom import AE

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sonobridge.api.maintenance.v1 import maintenance_pb2, maintenance_pb2_grpc
from sonobridge.api.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from sonobridge.common.auth import ROLES, LocalIssuer
from sonobridge.node.cli import wait_ready
from sonobridge.node.consortium import COUNTY, demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.edition import NodePorts, SingleNode

pytestmark = [pytest.mark.security, pytest.mark.slow]

RIVER, EAST = "township-river", "township-east"
HOMES = {"own township": RIVER, "other township": EAST, "county": COUNTY}

# The rule, written out independently of sonobridge.common.access: which homes reach the data of
# a township (here: township-river, and township-east symmetrically). The county hospital serves
# both townships in the demo consortium.
EXPECTED: dict[str, dict[str, set[str]]] = {
    #            read: homes that may see it      write: homes that may change it
    "operator": {"read": {"own"}, "write": {"own"}},
    "physician": {"read": {"own", "county"}, "write": {"own"}},
    "coordinator": {"read": {"own", "county"}, "write": {"own"}},
    "expert": {"read": {"own", "county"}, "write": {"own"}},
    "engineer": {"read": set(), "write": set()},
    "admin": {"read": {"own", "other", "county"}, "write": {"own", "other", "county"}},
    "service": {"read": {"own", "other", "county"}, "write": {"own", "other", "county"}},
}

# Path parameters that name one institution's patient data.
PATIENT_PARAMS = {"exam_id", "session_id", "study", "series", "sop", "read_id", "report_id"}
PATIENT_PARAMS |= {"alert_id", "frames"}
# Reporting actions a reader takes on a read: never allowed where reading it is denied.
READER_ACTIONS = ("/claim", "/release", "/reassign", "/draft", "/verdicts", "/sign", "/amend")

DIMSE_AES = {"RIVERPROBE": RIVER, "EASTPROBE": EAST}

# Routes only an admin may call, from any home: they sum up the whole deployment (counts across
# institutions, no patient data). Any other role getting a 2xx is a leak; an admin, refused.
ADMIN_ONLY = {("GET", "/v1/validation/comparisons")}


def relation(home: str, owner: str) -> str:
    """Where the caller's home stands to the data's owner: own, other (township) or county."""
    if home == owner:
        return "own"
    return "county" if home == COUNTY else "other"


def expected_allows(role: str, action: str, home: str, owner: str) -> bool:
    """What EXPECTED says about `role` at `home` doing `action` on `owner`'s data."""
    return relation(home, owner) in EXPECTED[role][action]


# ---------------------------------------------------------------------------------------------
# The node and its seed data
# ---------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """One township's exam, instance, read and upload, and strings that only its data holds."""

    institution: str
    exam_id: str
    study: str
    series: str
    sop: str
    patient_id: str
    patient_ref: str
    read_id: str = ""
    session_id: str = ""

    @property
    def markers(self) -> set[str]:
        """Values that appear only in this township's patient data."""
        found = {self.exam_id, self.study, self.sop, self.patient_id, self.patient_ref}
        return found | ({self.read_id} if self.read_id else set())


@dataclass
class World:
    """The running node, its issuer, and what was seeded."""

    node: SingleNode
    issuer: LocalIssuer
    consortium_id: str
    seeded: dict[str, Seeded]
    ticket_id: str
    model: tuple[str, str]
    worklist: str
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, role: str, home: str) -> str:
        """A token for a synthetic user holding `role` at `home`."""
        key = (role, home)
        if key not in self.tokens:
            self.tokens[key] = self.issuer.issue(
                f"matrix-{role}@{home}", [role], home, consortium=self.consortium_id
            )
        return self.tokens[key]


def _instance(study: str, series: str, patient_id: str, sop: str | None = None) -> bytes:
    return synthetic_instance(
        study=study, series=series, sop=sop or generate_uid(), patient_id=patient_id
    )


def _seed_township(urls: dict[str, str], token: str, town: str, n: int) -> Seeded:
    tag = town.removeprefix("township-").upper()
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    seeded = Seeded(
        town, str(uuid.uuid4()), study, series, sop, f"PID-{tag}-{n}4417", f"PREF-{tag}-{n}902"
    )
    data = _instance(study, series, seeded.patient_id, sop)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=urls["ingest"], headers=headers, timeout=60) as client:
        created = client.post(
            "/v1/exams",
            json={
                "exam_id": seeded.exam_id,
                "institution_id": town,
                "device_serial": f"PROBE-0{n}L",
                "exam_type": "carotid",
                "patient_ref": seeded.patient_ref,
                "study_instance_uid": study,
            },
        )
        assert created.status_code == 201, created.text
        assert app_upload(client, seeded.exam_id, data).status_code == 204
        manifest = {"instances": [{"sop_instance_uid": sop, "sha256": _sha(data)}]}
        done = client.post(f"/v1/exams/{seeded.exam_id}/complete", json=manifest)
        assert done.status_code == 200, done.text
        # An upload left open, so the tus routes have a real session to aim at.
        seeded.session_id = tus_create(client, seeded.exam_id, 1000).rsplit("/", 1)[-1]
    return seeded


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("matrix-node")
    # Each township's device AE is registered, so C-STORE is judged by the policy, not refused.
    consortium = dataclasses.replace(demo_consortium(), dimse_callers=DIMSE_AES)
    extra = node_settings_for(consortium, data_dir)
    # The notification stream closes at once, so probing it costs no time.
    extra["reporting"] = {"sse_max_seconds": 1}
    node = SingleNode(data_dir, ports=NodePorts.ephemeral(), extra_settings=extra)
    node.start()
    try:
        wait_ready(node)
        urls = node.urls()
        admin = consortium.token(node.issuer, "county-admin")
        seed(consortium, urls, admin)
        seeded = {
            RIVER: _seed_township(urls, consortium.token(node.issuer, "nurse-river"), RIVER, 3),
            EAST: _seed_township(urls, consortium.token(node.issuer, "nurse-east"), EAST, 1),
        }
        as_admin = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(headers=as_admin, timeout=30) as client:
            ticket = client.post(
                f"{urls['maintenance']}/v1/tickets",
                json={"device_serial": "PROBE-03L", "symptom": "dark lines"},
                headers={"Authorization": f"Bearer {consortium.token(node.issuer, 'nurse-river')}"},
            )
            assert ticket.status_code == 201, ticket.text
            models = client.get(f"{urls['inference']}/v1/models").json()["models"]
            model = (models[0]["name"], models[0]["version"])
            # Completed exams go through inference to a read on a worklist: wait for both.
            deadline = time.monotonic() + 120
            reads: dict[str, dict[str, Any]] = {}
            while time.monotonic() < deadline and len(reads) < 2:
                every = {"state": ["queued", "claimed", "escalated", "rescan_requested"]}
                listed = client.get(f"{urls['reporting']}/v1/reads", params=every).json()["reads"]
                reads = {
                    town: r
                    for r in listed
                    for town, s in seeded.items()
                    if r["study_instance_uid"] == s.study
                }
                time.sleep(0.3)
            assert len(reads) == 2, f"reads never appeared for both exams: {reads}"
        for town, read in reads.items():
            seeded[town].read_id = read["read_id"]
        yield World(
            node,
            node.issuer,
            consortium.id,
            seeded,
            ticket.json()["ticket_id"],
            model,
            reads[RIVER]["worklist"],
        )
    finally:
        node.stop()


# ---------------------------------------------------------------------------------------------
# Requests built from the OpenAPI documents
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One operation of one service's OpenAPI document."""

    service: str
    method: str
    path: str

    @property
    def channel(self) -> str:
        """The summary row this route counts in."""
        return "dicomweb" if self.path.startswith("/dicomweb") else f"rest {self.service}"

    @property
    def action(self) -> str | None:
        """`read`/`write` for routes that aim at one institution's patient data, else None."""
        if self.service in ("inference", "maintenance"):
            return None
        if self.method == "POST" and self.path in ("/v1/exams", "/dicomweb/studies"):
            return "write"
        if not set(re.findall(r"{(\w+)}", self.path)) & PATIENT_PARAMS:
            return None
        if self.method in ("GET", "HEAD", "OPTIONS"):
            return "read"
        if self.service == "reporting" and self.path.endswith(READER_ACTIONS):
            return "read"
        return "write"


def routes(world: World) -> list[Route]:
    """Every operation of the four services' OpenAPI documents."""
    found = []
    for service, url in world.node.urls().items():
        paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
        for path, operations in paths.items():
            for method in operations:
                found.append(Route(service, method.upper(), path))
    return found


def _stow_body(seeded: Seeded) -> tuple[bytes, str]:
    data = _instance(seeded.study, generate_uid(), seeded.patient_id)
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def build_request(world: World, route: Route, owner: str) -> dict[str, Any]:
    """Fill a route's path, query and body to aim at `owner`'s data; raise on unknown params."""
    s = world.seeded[owner]
    values = {
        "exam_id": s.exam_id,
        "session_id": s.session_id,
        "study": s.study,
        "series": s.series,
        "sop": s.sop,
        "frames": "1",
        "key": "7FE00010",
        "read_id": s.read_id,
        "report_id": str(uuid.uuid5(uuid.NAMESPACE_OID, s.read_id)),
        "version": world.model[1] if route.service == "inference" else "1",
        "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, s.read_id)),
        "worklist": world.worklist,
        "name": world.model[0],
        "serial": "PROBE-03L" if owner == RIVER else "PROBE-01L",
        "ticket_id": world.ticket_id,
        "ae_title": "MATRIXAE",
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AssertionError(f"{route}: the matrix does not know path parameter {name!r}")
        return values[name]

    request: dict[str, Any] = {
        "method": route.method,
        "url": world.node.urls()[route.service] + re.sub(r"{(\w+)}", fill, route.path),
        "headers": {},
    }
    key = (route.method, route.path)
    if key == ("POST", "/v1/exams"):
        request["json"] = {
            "exam_id": str(uuid.uuid4()),
            "institution_id": owner,
            "device_serial": "PROBE-03L",
            "exam_type": "thyroid",
            "patient_ref": s.patient_ref,
        }
    elif key == ("POST", "/v1/exams/{exam_id}/complete"):
        request["json"] = {"instances": [{"sop_instance_uid": "1.2.3.4", "sha256": "0" * 64}]}
    elif route.path.endswith("/uploads") and route.method == "POST":
        request["headers"] = {"Tus-Resumable": "1.0.0", "Upload-Length": "64"}
    elif route.path == "/v1/uploads/{session_id}":
        request["headers"] = {"Tus-Resumable": "1.0.0"}
        if route.method == "PATCH":
            request["headers"] |= {
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            }
            request["content"] = b"\0" * 16
    elif route.method == "POST" and route.path.startswith("/dicomweb/studies"):
        request["content"], content_type = _stow_body(s)
        request["headers"] = {"Content-Type": content_type}
    elif route.path.endswith("/reassign"):
        request["json"] = {"to_user": "dr-wang"}
    elif route.path.endswith("/draft"):
        request["json"] = {"language": "zh"} if route.method == "POST" else {"conclusion": "x"}
    elif route.path.endswith("/verdicts"):
        request["json"] = {"verdicts": [{"finding_code": "1", "verdict": "agree"}]}
    elif route.path.endswith("/amend"):
        request["json"] = {"reason": "matrix"}
    elif route.path.startswith("/v1/alerts/"):
        request["json"] = {"note": "matrix"}
    elif route.path == "/v1/validation/comparisons":
        request["params"] = {"model": "image-quality"}
    elif route.path == "/v1/utilisation":
        today = date.today()
        request["params"] = {"start": str(today - timedelta(days=7)), "end": str(today)}
    elif route.method in ("POST", "PUT", "PATCH"):
        # Fleet and model changes carry no patient data: an empty body still has to pass auth.
        request["json"] = {}
    return request


def send(client: httpx.Client, request: dict[str, Any]) -> tuple[int, bytes]:
    """Send one request; a server-sent event stream is answered by its status alone."""
    if request["url"].endswith("/stream"):
        with client.stream(**request) as response:
            return response.status_code, b""
    response = client.request(**request)
    return response.status_code, response.content


# ---------------------------------------------------------------------------------------------
# Bad tokens
# ---------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(world: World, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": world.issuer.issuer,
        "aud": world.issuer.audience,
        "sub": "matrix-admin",
        "iat": now,
        "exp": now + 600,
        "roles": ["admin"],
        "institution": COUNTY,
        "consortium": world.consortium_id,
        **over,
    }


def bad_tokens(world: World) -> dict[str, str | None]:
    """Seven ways to hold no valid token, each naming an admin (who could otherwise do anything)."""
    header = {"alg": "none", "typ": "JWT", "kid": world.issuer.kid}
    unsigned = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(world)).encode())}."
    public_pem = serialization.load_pem_private_key(
        world.issuer.private_pem(), password=None
    ).public_key()
    secret = public_pem.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": world.issuer.kid}
    signing_input = (
        f"{_b64(json.dumps(hs_header).encode())}.{_b64(json.dumps(_claims(world)).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    stranger = LocalIssuer(world.issuer.issuer, world.issuer.audience)
    return {
        "no token": None,
        "expired": world.issuer.issue(
            "matrix-admin", ["admin"], COUNTY, ttl_seconds=60, now=time.time() - 3600
        ),
        "garbage": "not.a.jwt",
        "alg=none": unsigned,
        "HS256 with the public key": f"{signing_input}.{_b64(signature)}",
        "unknown key": stranger.issue("matrix-admin", ["admin"], COUNTY),
        "wrong audience": world.issuer.issue(
            "matrix-admin", ["admin"], COUNTY, audience="another-api"
        ),
    }


# ---------------------------------------------------------------------------------------------
# gRPC methods
# ---------------------------------------------------------------------------------------------


def grpc_calls(world: World, owner: str) -> list[tuple[str, str, str | None, Callable[..., Any]]]:
    """(service, method, action, call(metadata)) for every method of the four gRPC services."""
    s = world.seeded[owner]
    ports = {name: host.grpc_port for name, host in world.node.hosts.items()}
    channels = {name: grpc.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
    ingest = ingest_pb2_grpc.IngestServiceStub(channels["ingest"])
    inference = inference_pb2_grpc.InferenceServiceStub(channels["inference"])
    reporting = reporting_pb2_grpc.ReportingServiceStub(channels["reporting"])
    maintenance = maintenance_pb2_grpc.MaintenanceServiceStub(channels["maintenance"])
    dicom = _instance(s.study, s.series, s.patient_id)
    image = inference_pb2.EncodedImage(media_type="application/dicom", data=dicom)
    calls: list[tuple[str, str, str | None, Callable[..., Any]]] = [
        ("ingest", "GetExam", "read", lambda md: ingest.GetExam(
            ingest_pb2.GetExamRequest(exam_id=s.exam_id), metadata=md, timeout=30)),
        ("ingest", "ListExamInstances", "read", lambda md: ingest.ListExamInstances(
            ingest_pb2.ListExamInstancesRequest(exam_id=s.exam_id), metadata=md, timeout=30)),
        ("inference", "Infer", None, lambda md: inference.Infer(
            inference_pb2.InferRequest(model_name=world.model[0], image=image),
            metadata=md, timeout=60)),
        ("inference", "CheckQuality", None, lambda md: inference.CheckQuality(
            inference_pb2.CheckQualityRequest(image=image), metadata=md, timeout=60)),
        ("inference", "ListModels", None, lambda md: inference.ListModels(
            inference_pb2.ListModelsRequest(), metadata=md, timeout=30)),
        ("inference", "GetModel", None, lambda md: inference.GetModel(
            inference_pb2.GetModelRequest(name=world.model[0]), metadata=md, timeout=30)),
        ("reporting", "GetRead", "read", lambda md: reporting.GetRead(
            reporting_pb2.GetReadRequest(read_id=s.read_id), metadata=md, timeout=30)),
        ("reporting", "ListWorklist", None, lambda md: reporting.ListWorklist(
            reporting_pb2.ListWorklistRequest(), metadata=md, timeout=30)),
        ("reporting", "GetReport", "read", lambda md: reporting.GetReport(
            reporting_pb2.GetReportRequest(report_id=str(uuid.uuid4())), metadata=md, timeout=30)),
        ("maintenance", "OpenTicket", None, lambda md: maintenance.OpenTicket(
            maintenance_pb2.OpenTicketRequest(device_serial="PROBE-03L", symptom="matrix"),
            metadata=md, timeout=30)),
        ("maintenance", "GetTicket", None, lambda md: maintenance.GetTicket(
            maintenance_pb2.GetTicketRequest(ticket_id=world.ticket_id), metadata=md, timeout=30)),
        ("maintenance", "ListDevices", None, lambda md: maintenance.ListDevices(
            maintenance_pb2.ListDevicesRequest(), metadata=md, timeout=30)),
        ("maintenance", "RecordTelemetry", None, lambda md: maintenance.RecordTelemetry(
            maintenance_pb2.RecordTelemetryRequest(device_serial="PROBE-03L"),
            metadata=md, timeout=30)),
    ]  # fmt: skip
    return calls


def grpc_outcome(call: Callable[..., Any], token: str | None) -> tuple[grpc.StatusCode, bytes]:
    """Call with the token; return the status code and the serialised answer (empty on error)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        answer = call(metadata)
    except grpc.RpcError as error:
        return error.code(), b""
    return grpc.StatusCode.OK, answer.SerializeToString()


# ---------------------------------------------------------------------------------------------
# Judging outcomes
# ---------------------------------------------------------------------------------------------

SUMMARY: dict[str, Counter[str]] = {}
ROUTES: dict[str, set[str]] = {}


def tally(channel: str, route: str, outcome: str) -> None:
    """Count one case of `channel` as `outcome` (allowed, denied or leak)."""
    SUMMARY.setdefault(channel, Counter())[outcome] += 1
    SUMMARY[channel]["cases"] += 1
    ROUTES.setdefault(channel, set()).add(route)


def foreign_data(world: World, role: str, home: str, body: bytes) -> list[str]:
    """Name the townships whose patient data is in `body` although the caller may not read it."""
    return [
        town
        for town, s in world.seeded.items()
        if not expected_allows(role, "read", home, town)
        and any(marker.encode() in body for marker in s.markers)
    ]


def empty(body: bytes) -> bool:
    """True for an answer that carries nothing: no content or an empty JSON list."""
    return body.strip() in (b"", b"[]")


def print_summary() -> str:
    """Render the summary table (channels, routes, cases, allowed, denied, leaks)."""
    lines = [
        "| channel | routes | cases | allowed | denied | leaks |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    total: Counter[str] = Counter()
    for channel in sorted(SUMMARY):
        c = SUMMARY[channel]
        n = len(ROUTES[channel])
        total.update(c)
        total["routes"] += n
        lines.append(
            f"| {channel} | {n} | {c['cases']} | {c['allowed']} | {c['denied']} | {c['leak']} |"
        )
    lines.append(
        f"| **all** | {total['routes']} | {total['cases']} | {total['allowed']} | "
        f"{total['denied']} | {total['leak']} |"
    )
    table = "\n".join(lines)
    print("\n" + table)
    return table


# ---------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------


def test_every_route_refuses_every_bad_token(world: World) -> None:
    tokens = bad_tokens(world)
    failures = []
    with httpx.Client(timeout=60) as client:
        for route in routes(world):
            for kind, token in tokens.items():
                request = build_request(world, route, RIVER)
                if token:
                    request["headers"] = {**request["headers"], "Authorization": f"Bearer {token}"}
                status, _ = send(client, request)
                ok = status == 401
                tally(
                    f"bad tokens: {route.channel}",
                    f"{route.method} {route.path}",
                    ("denied" if ok else ("leak" if 200 <= status < 300 else "allowed")),
                )
                if not ok:
                    failures.append(f"{route.method} {route.path} [{kind}] -> {status}")
    for service, method, _action, call in grpc_calls(world, RIVER):
        for kind, token in tokens.items():
            code, _ = grpc_outcome(call, token)
            ok = code == grpc.StatusCode.UNAUTHENTICATED
            tally(
                "bad tokens: grpc",
                f"{service}.{method}",
                "denied" if ok else ("leak" if code == grpc.StatusCode.OK else "allowed"),
            )
            if not ok:
                failures.append(f"gRPC {service}.{method} [{kind}] -> {code.name}")
    assert failures == [], "\n".join(failures)


def test_every_route_refuses_two_authorization_headers(world: World) -> None:
    # Both tokens are valid: whichever one a server library picks, the caller is ambiguous.
    owner, stranger = world.token("admin", RIVER), world.token("operator", EAST)
    pairs = {"owner first": (owner, stranger), "stranger first": (stranger, owner)}
    failures = []
    with httpx.Client(timeout=60) as client:
        for route in routes(world):
            for kind, (first, second) in pairs.items():
                request = build_request(world, route, RIVER)
                request["headers"] = [
                    *request["headers"].items(),
                    ("Authorization", f"Bearer {first}"),
                    ("Authorization", f"Bearer {second}"),
                ]
                status, body = send(client, request)
                tally(
                    "two authorization headers",
                    f"{route.method} {route.path}",
                    ("denied" if status == 401 else "leak" if status < 300 else "allowed"),
                )
                if status != 401 or (body and b"one authorization header" not in body):
                    failures.append(f"{route.method} {route.path} [{kind}] -> {status}")
    for service, method, _action, call in grpc_calls(world, RIVER):
        for kind, (first, second) in pairs.items():
            metadata = (("authorization", f"Bearer {first}"), ("authorization", f"Bearer {second}"))
            try:
                call(metadata)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            tally(
                "two authorization headers",
                f"{service}.{method}",
                ("denied" if code == grpc.StatusCode.UNAUTHENTICATED else "allowed"),
            )
            if code != grpc.StatusCode.UNAUTHENTICATED:
                failures.append(f"gRPC {service}.{method} [{kind}] -> {code.name}")
    assert failures == [], "\n".join(failures)


def test_every_rest_and_dicomweb_route_for_every_role_and_institution(world: World) -> None:
    leaks, over_denied = [], []
    with httpx.Client(timeout=60) as client:
        for route in routes(world):
            for role in sorted(ROLES):
                for where, home in HOMES.items():
                    request = build_request(world, route, RIVER)
                    request["headers"] = {
                        **request["headers"],
                        "Authorization": f"Bearer {world.token(role, home)}",
                    }
                    status, body = send(client, request)
                    case = f"{route.method} {route.path} as {role} at {where} -> {status}"
                    denied = status in (401, 403, 404) or (200 <= status < 300 and empty(body))
                    leak = False
                    if route.action is not None and not expected_allows(
                        role, route.action, home, RIVER
                    ):
                        # Denied: nothing of the target may come back, and no write may succeed.
                        leak = 200 <= status < 300 and (not empty(body) or route.action == "write")
                    if (route.method, route.path) in ADMIN_ONLY:
                        leak = leak or (role != "admin" and 200 <= status < 300)
                        if role == "admin" and status >= 300:
                            over_denied.append(case)
                    foreign = foreign_data(world, role, home, body) if status < 300 else []
                    if leak or foreign:
                        leaks.append(f"{case} {foreign or ''}: {body[:160]!r}")
                    elif (
                        route.service == "ingest"
                        and route.action == "read"
                        and re.search(r"{(exam_id|study)}", route.path)
                        and route.method == "GET"
                        and expected_allows(role, "read", home, RIVER)
                        and status >= 300
                    ):
                        over_denied.append(case)
                    tally(
                        route.channel,
                        f"{route.method} {route.path}",
                        "leak" if leak or foreign else ("denied" if denied else "allowed"),
                    )
    assert leaks == [], "\n".join(leaks)
    assert over_denied == [], "\n".join(over_denied)


def test_every_grpc_method_for_every_role_and_institution(world: World) -> None:
    leaks, over_denied = [], []
    for service, method, action, call in grpc_calls(world, RIVER):
        for role in sorted(ROLES):
            for where, home in HOMES.items():
                code, answer = grpc_outcome(call, world.token(role, home))
                case = f"gRPC {service}.{method} as {role} at {where} -> {code.name}"
                ok = code == grpc.StatusCode.OK
                leak = bool(
                    ok and action is not None and not expected_allows(role, action, home, RIVER)
                )
                foreign = foreign_data(world, role, home, answer) if ok else []
                if leak or foreign:
                    leaks.append(f"{case} {foreign}")
                if service == "ingest" and expected_allows(role, "read", home, RIVER) and not ok:
                    over_denied.append(case)
                denied = code in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.NOT_FOUND,
                )
                tally(
                    "grpc",
                    f"{service}.{method}",
                    "leak" if leak or foreign else ("denied" if denied else "allowed"),
                )
    assert leaks == [], "\n".join(leaks)
    assert over_denied == [], "\n".join(over_denied)


def _c_store(world: World, calling: str, data: bytes) -> int | None:
    scp = world.node.hosts["ingest"].app.state.dimse
    assert scp.ready.wait(10), "DICOM SCP did not start"
    dataset = pydicom.dcmread(io.BytesIO(data))
    ae = AE(ae_title=calling)
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="SONOBRIDGE")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(dataset)
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def _study_instances(world: World, study: str, role: str = "admin", home: str = COUNTY) -> set[str]:
    response = httpx.get(
        f"{world.node.urls()['ingest']}/dicomweb/studies/{study}/instances",
        headers={"Authorization": f"Bearer {world.token(role, home)}"},
        timeout=30,
    )
    if response.status_code == 204:
        return set()
    return {item["00080018"]["Value"][0] for item in response.json()}


def test_c_store_into_another_institutions_study_is_refused(world: World) -> None:
    river = world.seeded[RIVER]
    # Calling AEs are registered per institution (the consortium's `dimse_callers`); an AE that
    # is not registered is refused at association, so it stores nothing anywhere.
    cases = [("RIVERPROBE", True), ("EASTPROBE", False), ("STRANGER", False)]
    problems = []
    for calling, allowed in cases:
        sop = generate_uid()
        status = _c_store(
            world, calling, _instance(river.study, river.series, river.patient_id, sop)
        )
        stored = sop in _study_instances(world, river.study)
        leak = stored and not allowed
        tally("dimse c-store", "C-STORE", "leak" if leak else ("allowed" if stored else "denied"))
        if stored != allowed or (status == 0) != allowed:
            problems.append(
                f"C-STORE by {calling} into river's study: status {status}, "
                f"stored {stored}, expected {'stored' if allowed else 'refused'}"
            )
    # A device of east stores a new study, which east's staff then see and river's do not.
    study = generate_uid()
    status = _c_store(world, "EASTPROBE", _instance(study, generate_uid(), "PID-EAST-DIMSE"))
    tally("dimse c-store", "C-STORE", "allowed" if status == 0 else "denied")
    if status != 0:
        problems.append(f"C-STORE by EASTPROBE of its own new study: status {status}")
    if not _study_instances(world, study, "operator", EAST):
        problems.append("east's operator does not see the study east's device stored")
    if _study_instances(world, study, "operator", RIVER):
        problems.append("river's operator sees the study east's device stored")
    assert problems == [], "\n".join(problems)


def test_print_the_summary(world: World) -> None:
    table = print_summary()
    assert "| **all** |" in table
    assert sum(c["leak"] for c in SUMMARY.values()) == 0
