"""Property-based fuzzing of the single node: every OpenAPI route, tus headers, broken DICOM.

Each target is seeded and bounded (SONOBRIDGE_FUZZ_SCALE raises the counts; `make fuzz`); each
prints how many cases it ran. Whatever the input: no 5xx, no hang (every request has a timeout),
every 4xx is problem+json, and afterwards no index row lacks its object and no completed exam
lacks an instance.
"""

from __future__ import annotations

import importlib
import io
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pydicom
import pytest
import requests
import schemathesis
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage
from schemathesis import GenerationMode
from security.fuzz_support import (
    FUZZ_AE,
    FUZZ_INSTITUTION,
    REQUEST_TIMEOUT,
    SEED,
    Tally,
    base_instance,
    dataset_start,
    examples,
    fresh_uids,
    integer_header,
    malformed_dicom,
    message_strategy,
    partial_state,
    report,
    start_node,
    stow_body,
    tokens,
    tus_version,
    upload_checksum,
    upload_metadata,
)

from sonobridge.node.consortium import Consortium
from sonobridge.node.consortium import seed as seed_consortium
from sonobridge.node.edition import SERVICES, SingleNode

pytestmark = pytest.mark.slow

# Cases per target in CI: about a minute on two cores, every target of this module together.
OPENAPI_CASES = {"ingest": 120, "inference": 100, "reporting": 120, "maintenance": 120}
TUS_CASES = 120
DICOM_CASES = {"stow": 50, "quality-checks": 50, "c-store": 50}
GRPC_CASES = {"ingest": 60, "inference": 40, "reporting": 60, "maintenance": 60}


def _settings(count: int) -> settings:
    return settings(
        max_examples=examples(count),
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SingleNode, Consortium]]:
    node, consortium = start_node(tmp_path_factory.mktemp("fuzz-node"))
    try:
        yield node, consortium
    finally:
        node.stop()


@pytest.fixture(scope="module")
def callers(fuzz_node: tuple[SingleNode, Consortium]) -> dict[str, str]:
    return tokens(*fuzz_node)


@pytest.fixture(scope="module")
def real_ids(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Path parameters that name things that exist, so generated requests get past the 404s."""
    node, consortium = fuzz_node
    urls = node.urls()
    seed_consortium(consortium, urls, callers["county-admin"])
    instance = base_instance(seed=21)
    ds = pydicom.dcmread(io.BytesIO(instance))
    with httpx.Client(base_url=urls["ingest"], timeout=REQUEST_TIMEOUT) as client:
        exam_id, study = _open_exam(client, callers["nurse-east"])
        ds.StudyInstanceUID = study
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        auth = {"Authorization": f"Bearer {callers['nurse-east']}"}
        body, content_type = stow_body([out.getvalue()])
        stored = client.post(
            f"/dicomweb/studies/{study}",
            content=body,
            headers={**auth, "Content-Type": content_type},
        )
        assert stored.status_code == 200, stored.text
        session = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={**auth, "Tus-Resumable": "1.0.0", "Upload-Length": "1000"},
        )
        assert session.status_code == 201, session.text
    return {
        "ingest": {
            "exam_id": exam_id,
            "study": study,
            "series": str(ds.SeriesInstanceUID),
            "sop": str(ds.SOPInstanceUID),
            "frames": "1",
            "session_id": session.headers["Location"].rsplit("/", 1)[-1],
        },
        "inference": {"name": "image-quality", "version": "1.0.0"},
        "reporting": {"worklist": consortium.duties[0].worklist},
        "maintenance": {"serial": consortium.devices[0].serial},
    }


def _open_exam(client: httpx.Client, token: str) -> tuple[str, str]:
    """An exam of the fuzz institution (and its study UID), opened by its operator."""
    exam_id, study = str(uuid.uuid4()), pydicom.uid.generate_uid()
    response = client.post(
        "/v1/exams",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "exam_id": exam_id,
            "institution_id": FUZZ_INSTITUTION,
            "device_serial": "PROBE-01L",
            "exam_type": "thyroid",
            "patient_ref": "fuzz-patient",
            "study_instance_uid": study,
        },
    )
    assert response.status_code == 201, response.text
    return exam_id, study


@pytest.mark.parametrize("service", SERVICES)
def test_no_route_answers_5xx_to_generated_requests(
    fuzz_node: tuple[SingleNode, Consortium],
    callers: dict[str, str],
    real_ids: dict[str, dict[str, str]],
    service: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, _ = fuzz_node
    base = node.urls()[service]
    raw = httpx.get(f"{base}/openapi.json", timeout=REQUEST_TIMEOUT).json()
    schema = schemathesis.openapi.from_dict(raw)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    tally = Tally(f"openapi {service}")
    session = requests.Session()

    @_settings(OPENAPI_CASES[service])
    @seed(SEED)
    @given(case=cases, caller=st.sampled_from(sorted(callers)), real=st.booleans())
    def run(case: Any, caller: str, real: bool) -> None:
        tally.cases += 1
        if real:  # half the cases aim at things that exist
            for name in set(case.path_parameters or {}) & set(real_ids[service]):
                case.path_parameters[name] = real_ids[service][name]
        try:
            response = case.call(
                base_url=base,
                session=session,
                headers={"Authorization": f"Bearer {callers[caller]}"},
                timeout=REQUEST_TIMEOUT,
            )
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
            tally.unsendable += 1  # the client library refuses to send it; no server involved
            return
        tally.check_http(response, f"{case.method} {case.formatted_path} as {caller}")

    run()
    report(tally, capsys)
    assert partial_state(node.data_dir) == []


def test_tus_headers_never_break_the_upload_protocol(
    fuzz_node: tuple[SingleNode, Consortium],
    callers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, _ = fuzz_node
    token = callers["nurse-east"]
    auth = {"Authorization": f"Bearer {token}"}
    instance = base_instance(seed=3)
    tally = Tally("tus headers")
    with httpx.Client(base_url=node.urls()["ingest"], timeout=REQUEST_TIMEOUT) as client:
        exam_id, _ = _open_exam(client, token)

        def send(method: str, url: str, headers: dict[str, bytes | str], body: bytes = b"") -> None:
            tally.cases += 1
            try:
                response = client.request(
                    method, url, headers={**auth, **headers}, content=body or None
                )
            except (httpx.LocalProtocolError, UnicodeEncodeError):
                tally.unsendable += 1
                return
            tally.check_http(response, f"{method} {url} {headers!r}")

        @_settings(TUS_CASES)
        @seed(SEED)
        @given(
            step=st.sampled_from(["create", "patch", "head", "delete"]),
            version=tus_version(),
            length=integer_header(),
            offset=integer_header(),
            metadata=st.one_of(st.none(), upload_metadata()),
            checksum=upload_checksum(),
            content_type=st.sampled_from(
                [b"application/offset+octet-stream", b"application/octet-stream", b"\xb2", b""]
            ),
            cut=st.integers(0, len(instance)),
        )
        def run(
            step: str,
            version: bytes,
            length: bytes,
            offset: bytes,
            metadata: bytes | None,
            checksum: bytes | None,
            content_type: bytes,
            cut: int,
        ) -> None:
            if step == "create":
                headers: dict[str, bytes | str] = {
                    "Tus-Resumable": version,
                    "Upload-Length": length,
                }
                if metadata is not None:
                    headers["Upload-Metadata"] = metadata
                send("POST", f"/v1/exams/{exam_id}/uploads", headers)
                return
            # A real session to aim at, so the headers reach the offset and checksum checks.
            created = client.post(
                f"/v1/exams/{exam_id}/uploads",
                headers={**auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(instance))},
            )
            assert created.status_code == 201, created.text
            url = created.headers["Location"]
            if step == "patch":
                headers = {
                    "Tus-Resumable": version,
                    "Upload-Offset": offset,
                    "Content-Type": content_type,
                }
                if checksum is not None:
                    headers["Upload-Checksum"] = checksum
                send("PATCH", url, headers, instance[:cut])
            elif step == "head":
                send("HEAD", url, {"Tus-Resumable": version})
            else:
                send("DELETE", url, {"Tus-Resumable": version})

        run()
    report(tally, capsys)
    assert partial_state(node.data_dir) == []


def _store_contexts(ae: AE) -> None:
    for sop_class in (UltrasoundImageStorage, UltrasoundMultiFrameImageStorage):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])


def _associate(ae: AE, port: int) -> Any:
    """Associate as the registered fuzz caller, waiting out transient refusals.

    Cases that make the SCP abort leave a new association per case; until the aborted ones'
    threads end, the SCP may be at its association limit and refuses transiently (PS3.8 7.1.1.9
    result 2), which is its designed answer. A permanent refusal fails the test at once.
    """
    deadline = time.monotonic() + 30
    while True:
        assoc = ae.associate("127.0.0.1", port, ae_title="SONOBRIDGE")
        if assoc.is_established:
            return assoc
        result = getattr(assoc.acceptor, "primitive", None)
        transient = assoc.is_rejected and result is not None and result.result == 0x02
        assert transient and time.monotonic() < deadline, (
            "the SCP refused the registered fuzz caller"
            + (f" (result {result.result}, reason {result.diagnostic})" if result else "")
        )
        time.sleep(0.5)


@pytest.mark.parametrize("channel", ["stow", "quality-checks", "c-store"])
def test_malformed_dicom_gets_a_refusal_never_a_crash(
    fuzz_node: tuple[SingleNode, Consortium],
    callers: dict[str, str],
    channel: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, _ = fuzz_node
    token = callers["nurse-east"]
    auth = {"Authorization": f"Bearer {token}"}
    tally = Tally(f"malformed DICOM via {channel}")
    base = base_instance(seed=5)
    client = httpx.Client(
        base_url=node.urls()["inference" if channel == "quality-checks" else "ingest"],
        timeout=REQUEST_TIMEOUT,
    )
    ae = AE(ae_title=FUZZ_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = REQUEST_TIMEOUT
    _store_contexts(ae)
    dimse_port = node.hosts["ingest"].app.state.dimse.port
    spool = Path(tempfile.mkdtemp(prefix="fuzz-dimse-"))
    assoc: Any = None

    def c_store(kind: str, data: bytes) -> None:
        nonlocal assoc
        # DIMSE carries the dataset without the file meta, which pynetdicom reads to send:
        # keep the meta intact and break only the dataset behind it.
        start = dataset_start(base)
        path = spool / "instance.dcm"
        path.write_bytes(base[:start] + data[start:] if data[:start] != base[:start] else data)
        try:
            pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[(0x0002, 0x0010)])
        except Exception:
            tally.unsendable += 1  # pynetdicom cannot even read the file meta to send it
            return
        if assoc is None or not assoc.is_established:
            assoc = _associate(ae, dimse_port)
        started = time.monotonic()
        try:
            status = assoc.send_c_store(path)
        except Exception:
            # pynetdicom itself chokes on the file (its meta, its encoding) before sending; a
            # server that drops the association answers an empty status instead, below.
            tally.unsendable += 1
            return
        elapsed = time.monotonic() - started
        code = int(status.Status) if "Status" in status else -1
        tally.statuses[code] += 1
        if code == -1:
            tally.failures.append(f"C-STORE {kind}: no status after {elapsed:.1f} s")
            assoc = None

    @_settings(DICOM_CASES[channel])
    @seed(SEED)
    @given(case=malformed_dicom(base))
    def run(case: tuple[str, bytes]) -> None:
        kind, data = case
        tally.cases += 1
        if channel == "c-store":
            c_store(kind, data)
            return
        if channel == "stow":
            body, content_type = stow_body([data])
            response = client.post(
                "/dicomweb/studies", content=body, headers={**auth, "Content-Type": content_type}
            )
        else:
            response = client.post(
                "/v1/quality-checks",
                content=data,
                headers={**auth, "Content-Type": "application/dicom"},
            )
        stow_answer = ("application/dicom+json",) if channel == "stow" else ()
        tally.check_http(response, f"{channel} {kind} ({len(data)} bytes)", stow_answer)

    try:
        run()
        # The channel still works for a good instance after the storm.
        good = fresh_uids(base)
        if channel == "c-store":
            c_store("valid", good)
            assert tally.statuses[0] >= 1, tally.summary()
        elif channel == "stow":
            body, content_type = stow_body([good])
            ok = client.post(
                "/dicomweb/studies", content=body, headers={**auth, "Content-Type": content_type}
            )
            assert ok.status_code == 200, ok.text
        else:
            ok = client.post(
                "/v1/quality-checks",
                content=good,
                headers={**auth, "Content-Type": "application/dicom"},
            )
            assert ok.status_code == 200, ok.text
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()
        client.close()
    report(tally, capsys)
    assert partial_state(node.data_dir) == []


# A status that says the server broke, not that the request was wrong.
_BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.mark.parametrize("service", SERVICES)
def test_no_grpc_method_fails_internally_on_generated_requests(
    fuzz_node: tuple[SingleNode, Consortium],
    callers: dict[str, str],
    real_ids: dict[str, dict[str, str]],
    service: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, _ = fuzz_node
    module = importlib.import_module(f"sonobridge.api.{service}.v1.{service}_pb2")
    [descriptor] = module.DESCRIPTOR.services_by_name.values()
    strings = sorted({*real_ids[service].values(), *callers.keys(), FUZZ_INSTITUTION})
    methods = {
        m.name: (GetMessageClass(m.input_type), GetMessageClass(m.output_type))
        for m in descriptor.methods
    }
    requests_by_method = st.sampled_from(sorted(methods)).flatmap(
        lambda name: st.tuples(st.just(name), message_strategy(methods[name][0], strings=strings))
    )
    tally = Tally(f"gRPC {service}")
    channel = grpc.insecure_channel(f"127.0.0.1:{node.hosts[service].grpc_port}")

    @_settings(GRPC_CASES[service])
    @seed(SEED)
    @given(call=requests_by_method, caller=st.sampled_from(sorted(callers)))
    def run(call: tuple[str, Any], caller: str) -> None:
        name, request = call
        tally.cases += 1
        stub = channel.unary_unary(
            f"/{descriptor.full_name}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=methods[name][1].FromString,
        )
        try:
            stub(
                request,
                timeout=REQUEST_TIMEOUT,
                metadata=[("authorization", f"Bearer {callers[caller]}")],
            )
        except grpc.RpcError as error:
            tally.statuses[error.code().value[0]] += 1
            if error.code() in _BROKEN:
                tally.failures.append(f"{name} as {caller}: {error.code().name} {error.details()}")
            return
        tally.statuses[0] += 1

    try:
        run()
    finally:
        channel.close()
    report(tally, capsys)
    assert partial_state(node.data_dir) == []


# Bytes no protobuf message decodes from: a truncated length, a bad tag, a bad varint.
_UNDECODABLE = (b"\x0a\xff", b"\xff\xff\xff\xff", b"\x08" + b"\xff" * 11)


@pytest.mark.parametrize("service", SERVICES)
def test_every_grpc_method_refuses_undecodable_bytes_as_invalid_argument(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str], service: str
) -> None:
    node, _ = fuzz_node
    module = importlib.import_module(f"sonobridge.api.{service}.v1.{service}_pb2")
    [descriptor] = module.DESCRIPTOR.services_by_name.values()
    token = callers[sorted(callers)[0]]
    answered: dict[str, set[str]] = {}
    with grpc.insecure_channel(f"127.0.0.1:{node.hosts[service].grpc_port}") as channel:
        for method in descriptor.methods:
            if method.client_streaming or method.server_streaming:
                continue  # InferStream: its own port and fuzz (test_fuzz_stream.py)
            call = channel.unary_unary(f"/{descriptor.full_name}/{method.name}")
            for raw in _UNDECODABLE:
                with pytest.raises(grpc.RpcError) as refused:
                    call(
                        raw,
                        timeout=REQUEST_TIMEOUT,
                        metadata=[("authorization", f"Bearer {token}")],
                    )
                answered.setdefault(refused.value.code().name, set()).add(method.name)
    assert set(answered) == {"INVALID_ARGUMENT"}, answered


# Inputs that answered 5xx before (issue 13), kept as fixed cases beside the generated ones.
KNOWN_BAD = [
    ("ingest", "GET", "/dicomweb/studies?limit=%C2%B2", {}),
    ("ingest", "GET", "/dicomweb/studies?offset=99999999999999999999999", {}),
    ("ingest", "GET", "/dicomweb/studies?SeriesNumber=99999999999999999999", {}),
    ("ingest", "GET", "/dicomweb/series?SeriesNumber=%C2%B2", {}),
    ("inference", "GET", "/v1/models/..%2F..%2Fetc/1", {}),
    ("inference", "GET", "/v1/models/a%25b/1/card.json", {}),
    ("inference", "GET", "/v1/models/a%00b/1/model.onnx", {}),
    ("inference", "GET", f"/v1/models/{'m' * 300}/1", {}),
    ("inference", "POST", "/v1/models/no-such-model/1/pin", {}),
    ("inference", "POST", "/v1/models/no-such-model/1/unload", {}),
    ("inference", "POST", f"/v1/models/{'m' * 300}/1/load", {}),
    ("inference", "POST", "/v1/models/..%00/1/unload", {}),
]


@pytest.mark.parametrize(("service", "method", "path", "extra"), KNOWN_BAD)
def test_inputs_that_once_answered_5xx_now_answer_4xx(
    fuzz_node: tuple[SingleNode, Consortium],
    callers: dict[str, str],
    service: str,
    method: str,
    path: str,
    extra: dict[str, Any],
) -> None:
    node, _ = fuzz_node
    with httpx.Client(base_url=node.urls()[service], timeout=REQUEST_TIMEOUT) as client:
        response = client.request(
            method, path, headers={"Authorization": f"Bearer {callers['county-admin']}"}, **extra
        )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_telemetry_with_year_9999_and_huge_drops_is_refused(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> None:
    node, _ = fuzz_node
    with httpx.Client(
        base_url=node.urls()["maintenance"],
        timeout=REQUEST_TIMEOUT,
        headers={"Authorization": f"Bearer {callers['nurse-east']}"},
    ) as client:
        answers = [
            client.post(
                "/v1/telemetry-batches",
                json={
                    "batch_id": str(uuid.uuid4()),
                    "device_serial": "PROBE-01L",
                    "samples": [sample],
                },
            )
            for sample in (
                {"recorded_at": "9999-12-31T23:59:59-05:00"},
                {"recorded_at": "0001-01-01T00:00:00+05:00"},
                {"recorded_at": "2026-11-29T10:00:00+00:00", "drops": 2**70},
            )
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


def test_tus_upload_length_in_odd_digits_is_refused(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> None:
    node, _ = fuzz_node
    with httpx.Client(base_url=node.urls()["ingest"], timeout=REQUEST_TIMEOUT) as client:
        exam_id, _ = _open_exam(client, callers["nurse-east"])
        answers = [
            client.post(
                f"/v1/exams/{exam_id}/uploads",
                headers={
                    "Authorization": f"Bearer {callers['nurse-east']}",
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": value,
                },
            )
            for value in (b"\xb2", "²".encode(), str(2**70).encode(), b"-1")
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


def test_deeply_nested_dicom_gets_4xx_from_quality_checks(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> None:
    from security.fuzz_support import deep_sequence, without

    node, _ = fuzz_node
    base = base_instance(seed=9)
    with httpx.Client(
        base_url=node.urls()["inference"],
        timeout=REQUEST_TIMEOUT,
        headers={
            "Authorization": f"Bearer {callers['nurse-east']}",
            "Content-Type": "application/dicom",
        },
    ) as client:
        answers = {
            "deep": client.post("/v1/quality-checks", content=deep_sequence(base, 3000)),
            "no (0028,0006)": client.post(
                "/v1/quality-checks", content=without(base, ["PlanarConfiguration"])
            ),
            "no pixel module": client.post(
                "/v1/quality-checks", content=without(base, ["Rows", "Columns", "PixelData"])
            ),
        }
    for name, answer in answers.items():
        assert 400 <= answer.status_code < 500, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", name


def test_an_unexpected_error_answers_problem_json_with_an_error_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from sonobridge.common.http import create_service_app
    from sonobridge.common.metrics import ServiceMetrics

    app = create_service_app(service="probe", metrics=ServiceMetrics("probe", CollectorRegistry()))

    patient = "-".join(["DOE^CANARY", "19010203"])  # built at run time: not in any source line

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"UNIQUE constraint failed [parameters: ({patient!r}, 1)]")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    error_id = response.json()["error_id"]
    uuid.UUID(error_id)
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert "RuntimeError" in record.getMessage() and "/boom" in record.getMessage()
    assert "CANARY" not in record.getMessage() and "CANARY" not in str(vars(record))


def test_a_serial_that_differs_only_by_trailing_whitespace_is_the_same_device(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> None:
    node, _ = fuzz_node
    body = {"model": "SB-Linear-7", "institution_id": FUZZ_INSTITUTION}
    with httpx.Client(
        base_url=node.urls()["maintenance"],
        timeout=REQUEST_TIMEOUT,
        headers={"Authorization": f"Bearer {callers['county-admin']}"},
    ) as client:
        first = client.post("/v1/devices", json={**body, "serial": "FUZZ-DUP-1"})
        again = client.post("/v1/devices", json={**body, "serial": "FUZZ-DUP-1\x1d"})
    assert first.status_code == 201, first.text
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"


def test_tus_metadata_and_checksum_with_non_ascii_bytes_are_refused(
    fuzz_node: tuple[SingleNode, Consortium], callers: dict[str, str]
) -> None:
    node, _ = fuzz_node
    auth = {"Authorization": f"Bearer {callers['nurse-east']}", "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=node.urls()["ingest"], timeout=REQUEST_TIMEOUT) as client:
        exam_id, _ = _open_exam(client, callers["nurse-east"])
        metadata = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={**auth, "Upload-Length": "10", "Upload-Metadata": b"filename I\xb7OB"},
        )
        created = client.post(
            f"/v1/exams/{exam_id}/uploads", headers={**auth, "Upload-Length": "10"}
        )
        checksum = client.patch(
            created.headers["Location"],
            content=b"0123456789",
            headers={
                **auth,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": b"sha1 \xb7\xb7\xb7\xb7",
            },
        )
    for answer in (metadata, checksum):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
