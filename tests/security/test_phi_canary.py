"""A canary patient sent through every channel never shows up in the node's logs or replies.

Channels: tus, STOW-RS, C-STORE, quality checks over REST, and inference's InferStream (the
instances as frames, and the canary as a model and tensor name its errors echo to the caller).

The node runs as its own process (`sonobridge serve`), as in production, so what reaches stderr is
what a log shipper would get: Python warnings, pydicom's own logging, uncaught thread errors.
Ingest's refusals (problem+json, STOW's Warning and failed-SOP items, C-STORE's ErrorComment)
and the audit rows it writes for them hold no canary either: pydicom quotes the values it
cannot decode, and those may be the patient's.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import UltrasoundImageStorage
from security.fuzz_support import (
    base_instance,
    element_offsets,
    register_dimse_caller,
    stow_body,
    wrong_length,
)

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.common.infrastructure import local_issuer
from sonobridge.node.consortium import demo_consortium

pytestmark = pytest.mark.slow

CANARY = {
    "PatientName": "QUIXOTRIX^ZEBULONIA",
    "PatientID": "CANARY-ID-7731",
    "PatientBirthDate": "19010203",
}
# What must never appear: each value, and the name's parts on their own.
NEEDLES = ("QUIXOTRIX", "ZEBULONIA", "CANARY-ID-7731", "19010203")
CANARY_AE = "CANARYPROBE"


@dataclass
class NodeProcess:
    """The node as a child process: its URLs, DIMSE port, data directory and log files."""

    urls: dict[str, str]
    dimse_port: int
    stream_port: int
    data_dir: Path
    stderr: Path
    stdout: Path


@pytest.fixture(scope="module")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data_dir = tmp_path_factory.mktemp("canary-node")
    local_issuer(data_dir)  # the key the tests sign with; the node reuses it
    stderr, stdout = data_dir.parent / "canary-stderr.log", data_dir.parent / "canary-stdout.log"
    env = {
        **os.environ,
        # The node runs without a consortium file: its DIMSE callers store for the demo's.
        "INGEST__CONSORTIUM_ID": demo_consortium().id,
        "PYTHONUNBUFFERED": "1",
    }
    with stderr.open("wb") as err, stdout.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "sonobridge.node", "--data-dir", str(data_dir)),
                *("--log-level", "INFO", "serve", "--ephemeral-ports"),
            ],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            urls, dimse, streams = _wait_for_banner(stdout, process)
            yield NodeProcess(urls, dimse, streams, data_dir, stderr, stdout)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_banner(
    stdout: Path, process: subprocess.Popen[bytes]
) -> tuple[dict[str, str], int, int]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = stdout.read_text(errors="replace")
        if "data directory:" in text:
            urls = dict(re.findall(r"^\s+(\w+)\s+REST (http://[\d.:]+)/v1", text, re.M))
            dimse = int(re.search(r"DICOM C-STORE [\d.]+:(\d+)", text).group(1))  # type: ignore[union-attr]
            streams = int(re.search(r"gRPC InferStream [\d.]+:(\d+)", text).group(1))  # type: ignore[union-attr]
            return urls, dimse, streams
        if process.poll() is not None:
            raise RuntimeError(f"node exited with {process.returncode}: {text}")
        time.sleep(0.3)
    raise TimeoutError("the node did not print its endpoints within 180 s")


def _canary_instance(study: str, seed: int) -> bytes:
    data = base_instance(seed=seed, **CANARY)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID = study
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    # The device model a quality check reads (through pydicom) to find its validation state.
    ds.Manufacturer, ds.ManufacturerModelName = "Acme", "Probe"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _swallowing(data: bytes, tag: bytes) -> bytes:
    """Lengthen one element so its value runs on over the patient's name, ID and birth date.

    The new length ends exactly where the element after the birth date starts, so the rest of
    the file still parses: the broken element's value is what pydicom echoes in its warnings.
    """
    offsets = element_offsets(data)
    [offset] = [o for o in offsets if data[o : o + 4] == tag]
    birth_date = b"\x10\x00\x30\x00"
    [end] = [n for o, n in itertools.pairwise(offsets) if data[o : o + 4] == birth_date]
    return wrong_length(data, offset, end - (offset + 8))


def _relabelled(data: bytes, tag: bytes, vr: bytes) -> bytes:
    """Give one element a VR its value cannot be decoded as: pydicom's error quotes the value.

    The patient's name (20 bytes) read as FD is no whole number of 8-byte values, and pydicom
    says so with the bytes themselves in its message.
    """
    [offset] = [o for o in element_offsets(data) if data[o : o + 4] == tag]
    return data[: offset + 4] + vr + data[offset + 6 :]


def _with_raw(data: bytes, tag: int, vr: str, value: bytes) -> bytes:
    """Set one element to raw bytes, as a device wrote them, whatever its VR makes of them."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _media_uid(data: bytes, text: str) -> bytes:
    """Put `text` in place of the file meta's MediaStorageSOPInstanceUID (same length)."""
    uid = str(pydicom.dcmread(io.BytesIO(data)).file_meta.MediaStorageSOPInstanceUID).encode()
    at = data.index(uid)  # the file meta comes first
    return data[:at] + text.encode().ljust(len(uid)) + data[at + len(uid) :]


def _stored_audit(data_dir: Path) -> list[str]:
    """Return every audit row ingest wrote, each as one line of its columns."""
    [database] = data_dir.rglob("ingest.sqlite3")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM audit_log").fetchall()
    return [" ".join(str(column) for column in row) for row in rows]


def _tus(client: httpx.Client, exam_id: str, data: bytes) -> httpx.Response:
    created = client.post(
        f"/v1/exams/{exam_id}/uploads",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))},
    )
    assert created.status_code == 201, created.text
    return client.patch(
        created.headers["Location"],
        content=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )


def _c_store(port: int, data: bytes, tmp: Path) -> tuple[int, str]:
    """C-STORE one file; return its status and ErrorComment (-2: not sent, -1: no status)."""
    path = tmp / f"{uuid.uuid4().hex}.dcm"
    path.write_bytes(data)
    ae = AE(ae_title=CANARY_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(UltrasoundImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="SONOBRIDGE")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
    except Exception:
        return -2, ""  # pynetdicom could not encode the broken file; nothing reached the node
    finally:
        assoc.release()
    if "Status" not in status:
        return -1, ""
    return int(status.Status), str(status.get("ErrorComment", ""))


def _infer_stream(port: int, token: str, frames: list[inference_pb2.InferRequest]) -> str:
    """Send frames on one InferStream; return how it ended (OK, or the status's name)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        try:
            list(stub.InferStream(iter(frames), metadata=[("authorization", f"Bearer {token}")]))
        except grpc.RpcError as ended:
            return ended.code().name  # type: ignore[no-any-return]
    return "OK"


def _dicom_frame(data: bytes) -> inference_pb2.InferRequest:
    image = inference_pb2.EncodedImage(data=data, media_type="application/dicom")
    return inference_pb2.InferRequest(model_name="image-quality", image=image)


def test_canary_patient_never_appears_in_any_log_line(
    node_process: NodeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    consortium = demo_consortium()
    issuer = local_issuer(node_process.data_dir)
    nurse = consortium.token(issuer, "nurse-east")
    headers = {"Authorization": f"Bearer {nurse}"}
    admin = consortium.token(issuer, "county-admin")
    register_dimse_caller(node_process.urls["ingest"], admin, CANARY_AE, "township-east")
    study = generate_uid()
    good = [_canary_instance(study, seed) for seed in range(4)]
    broken = {
        # Modality (CS) swallows the patient module: pydicom warns "Invalid value for VR CS:
        # '...'" with the swallowed bytes, and that the value is over-long.
        "study date": _swallowing(_canary_instance(study, 6), b"\x08\x00\x20\x00"),
        "study time": _swallowing(_canary_instance(study, 7), b"\x08\x00\x30\x00"),
        "accession": _swallowing(_canary_instance(study, 8), b"\x08\x00\x50\x00"),
        "modality": _swallowing(_canary_instance(study, 9), b"\x08\x00\x60\x00"),
        # Ingest no longer decodes the four above through pydicom (it refuses them from their
        # DICOM JSON), so nothing warns there; it refuses the manufacturer the same way, as it
        # holds every device-naming attribute to its VR. The quality check, which a file can
        # reach without ingest, reads it through pydicom (which warns that it is over-long)
        # and must take it for no device at all.
        "manufacturer": _swallowing(_canary_instance(study, 10), b"\x08\x00\x70\x00"),
        # Values pydicom cannot decode, and quotes in its error: the name read as FD, the
        # pixel spacing (DS) holding the name's parts, the file meta's instance UID (which a
        # mismatch with SOPInstanceUID would echo) holding the ID.
        "name as FD": _relabelled(_canary_instance(study, 11), b"\x10\x00\x10\x00", b"FD"),
        "spacing": _with_raw(
            _canary_instance(study, 12), 0x00280030, "DS", b"QUIXOTRIX\\ZEBULONIA "
        ),
        "media uid": _media_uid(_canary_instance(study, 13), CANARY["PatientID"]),
    }
    answers: dict[str, int] = {}
    # What ingest and inference answer and what inference exports: the canary is in none.
    answered: dict[str, str] = {}
    with httpx.Client(base_url=node_process.urls["ingest"], headers=headers, timeout=60) as ingest:
        exam_id = str(uuid.uuid4())
        opened = ingest.post(
            "/v1/exams",
            json={
                "exam_id": exam_id,
                "institution_id": "township-east",
                "device_serial": "PROBE-01L",
                "exam_type": "thyroid",
                "patient_ref": "canary-ref",
                "study_instance_uid": study,
            },
        )
        assert opened.status_code == 201, opened.text
        answers["tus"] = _tus(ingest, exam_id, good[0]).status_code
        body, content_type = stow_body([good[1]])
        answers["stow"] = ingest.post(
            f"/dicomweb/studies/{study}", content=body, headers={"Content-Type": content_type}
        ).status_code
        answers["c-store"] = _c_store(node_process.dimse_port, good[2], tmp_path)[0]
        for name, data in broken.items():
            refused = _tus(ingest, exam_id, data)
            answers[f"tus {name}"] = refused.status_code
            answered[f"tus {name}"] = refused.text
            body, content_type = stow_body([data])
            refused = ingest.post(
                "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
            )
            answers[f"stow {name}"] = refused.status_code
            answered[f"stow {name}"] = f"{refused.headers.get('Warning', '')} {refused.text}"
            status, comment = _c_store(node_process.dimse_port, data, tmp_path)
            answers[f"c-store {name}"], answered[f"c-store {name}"] = status, comment
        stored = ingest.get(f"/v1/exams/{exam_id}").json()["instances"]
        manifest = [
            {"sop_instance_uid": i["sop_instance_uid"], "sha256": i["sha256"]} for i in stored
        ]
        answers["complete"] = ingest.post(
            f"/v1/exams/{exam_id}/complete", json={"instances": manifest}
        ).status_code
        answers["qido"] = ingest.get(
            "/dicomweb/studies", params={"PatientID": CANARY["PatientID"]}
        ).status_code
        answers["qido instances"] = ingest.get(
            f"/dicomweb/studies/{study}/instances", params={"includefield": "all"}
        ).status_code
        answers["metadata"] = ingest.get(f"/dicomweb/studies/{study}/metadata").status_code
    with httpx.Client(
        base_url=node_process.urls["inference"], headers=headers, timeout=60
    ) as inference:
        for name, data in {"good": good[3], **broken}.items():
            checked = inference.post(
                "/v1/quality-checks", content=data, headers={"Content-Type": "application/dicom"}
            )
            answers[f"quality {name}"] = checked.status_code
            answered[f"quality {name}"] = checked.text
        devices = {
            name: inference.post(
                "/v1/quality-checks", content=data, headers={"Content-Type": "application/dicom"}
            ).json()["device_model"]
            for name, data in {"good": good[3], "manufacturer": broken["manufacturer"]}.items()
        }
    # InferStream: one stream per instance (a refused frame ends its stream), then the canary
    # as an unknown model's name and as a tensor's name, which the statuses echo to the caller.
    port = node_process.stream_port
    for name, data in {"good": good[3], **broken}.items():
        answers[f"stream {name}"] = _infer_stream(port, nurse, [_dicom_frame(data)])
    named = inference_pb2.InferRequest(model_name=CANARY["PatientName"], request_id="canary")
    named.tensors.tensors.add(name=CANARY["PatientID"], shape=[1], dtype=1, data=bytes(4))
    answers["stream canary model"] = _infer_stream(port, nurse, [named])
    named.model_name = "image-quality"
    answers["stream canary tensor"] = _infer_stream(port, nurse, [named])
    # Let the event consumers (inference, reporting) take the completed exam in.
    time.sleep(3)
    for name in ("ingest", "inference"):
        answered[f"{name} metrics"] = httpx.get(f"{node_process.urls[name]}/metrics").text
    audit = _stored_audit(node_process.data_dir)
    answered.update({f"audit row {n}": row for n, row in enumerate(audit)})

    assert answers["tus"] == 204 and answers["stow"] == 200 and answers["c-store"] == 0, answers
    assert answers["complete"] == 200 and answers["quality good"] == 200, answers
    # Every broken instance is refused at ingest, on each channel, with the channel's own error.
    for name in broken:
        assert answers[f"tus {name}"] == 422, json.dumps(answers)
        assert answers[f"stow {name}"] == 409, json.dumps(answers)
        # Over DIMSE no file meta travels: the SCP writes its own, so that file is sound there.
        assert answers[f"c-store {name}"] == (0 if name == "media uid" else 0xC000), answers
    assert devices == {"good": "acme / probe", "manufacturer": "unknown"}, devices
    refusals = [row for row in audit if "rejected:" in row]
    assert len(refusals) >= 2 * len(broken), audit  # tus and STOW each audit their refusal
    in_answers = {
        where: needle
        for where, text in answered.items()
        for needle in NEEDLES
        if needle.lower() in text.lower()
    }
    assert in_answers == {}, in_answers
    assert answers["stream good"] == "OK", answers
    assert answers["stream canary model"] == "NOT_FOUND", answers
    assert answers["stream canary tensor"] == "INVALID_ARGUMENT", answers
    streams = {k: v for k, v in answers.items() if k.startswith("stream")}
    assert not {"INTERNAL", "UNKNOWN"} & set(streams.values()), json.dumps(answers)
    http = {k: v for k, v in answers.items() if not k.startswith(("c-store", "stream"))}
    assert all(code < 500 for code in http.values()), json.dumps(answers)
    assert -1 not in answers.values(), json.dumps(answers)  # every C-STORE got a status

    lines = node_process.stderr.read_text(errors="replace").splitlines()
    not_json, hits, warnings = [], [], 0
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            not_json.append(f"{number}: {line[:200]}")
            continue
        warnings += entry.get("logger") in ("py.warnings", "pydicom")
        if any(needle.lower() in line.lower() for needle in NEEDLES):
            hits.append(f"{number}: {line[:300]}")
    banner = node_process.stdout.read_text(errors="replace")
    with capsys.disabled():
        print(
            f"\nPHI canary: {len(lines)} log lines scanned, {warnings} library warnings, "
            f"{len(hits)} canary hits, {len(not_json)} non-JSON lines; answers {answers}"
        )
    assert lines, "the node wrote no log lines at all"
    assert warnings > 0, "the broken instances made no library warn: the canary proves nothing"
    assert not_json == [], "\n".join(not_json[:10])
    assert hits == [], "\n".join(hits[:10])
    assert not any(needle in banner for needle in NEEDLES)
