"""Hostile DIMSE callers against the single node's C-STORE SCP, over real TCP.

Garbage connections give their association slots back within seconds, unknown calling AE titles
are rejected, a registered device cannot store into another institution's study, requests without
valid UIDs get a failure status and leave nothing, and only admins manage the AE registry.
"""

from __future__ import annotations

import copy
import io
import random
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from ingest.ingest_support import synthetic_instance
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import UltrasoundImageStorage, Verification  # type: ignore[attr-defined]
from sqlalchemy import text

from sonobridge.node.consortium import Consortium, demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.edition import NodePorts, SingleNode

DCMTK_BIN = Path("/usr/bin")
GARBAGE_EACH = 4  # random-byte, silent and half-sent-PDU connections each, plus 2 tricklers
SLOTS_BACK_WITHIN_S = 5.0
FAILURE_STATUSES = range(0xA000, 0x10000)


@dataclass
class Scp:
    """The single node (ingest only), seeded with the demo consortium's DIMSE callers."""

    node: SingleNode
    consortium: Consortium
    port: int
    spool: Path
    temp_dir: Path

    @property
    def scp(self) -> Any:
        return self.node.hosts["ingest"].app.state.dimse

    def open_associations(self) -> int:
        return len(self.scp.scp.ae.active_associations)

    def client(self, user: str | None = None) -> httpx.Client:
        headers = {}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.consortium.token(self.node.issuer, user)}"
        return httpx.Client(base_url=self.node.urls()["ingest"], headers=headers, timeout=30)

    def rows(self, column: str, value: str) -> int:
        deps = self.node.hosts["ingest"].app.state.deps
        with deps.unit() as work:
            query = text(f"SELECT COUNT(*) FROM instances WHERE {column} = :v")  # noqa: S608
            return int(work.session.execute(query, {"v": value}).scalar_one())

    def associate(self, calling: str) -> Any:
        ae = AE(ae_title=calling)
        ae.add_requested_context(Verification)
        ae.add_requested_context(UltrasoundImageStorage, "1.2.840.10008.1.2.1")
        return ae.associate("127.0.0.1", self.port, ae_title="SONOBRIDGE")


@pytest.fixture(scope="module")
def scp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scp]:
    if not (DCMTK_BIN / "storescu").exists():
        # dcmtk is a client for the test, installed on demand from the distribution.
        subprocess.run(["apt-get", "install", "-y", "-q", "dcmtk"], check=True, timeout=600)
    data_dir = tmp_path_factory.mktemp("dimse-abuse")
    # pynetdicom receives each C-STORE into a temp file; a private temp dir shows leftovers.
    temp_dir = data_dir / "tmp"
    temp_dir.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(temp_dir)
    consortium = demo_consortium()
    node = SingleNode(
        data_dir,
        ports=NodePorts.ephemeral(),
        services=("ingest",),
        extra_settings=node_settings_for(consortium),
    )
    node.start()
    try:
        # Only the ingest part of the seed: probes and rosters belong to services not started.
        seeded = seed(replace(consortium, devices=(), duties=()), node.urls(), admin_token(node))
        assert seeded.dimse_callers == ["EAST_US1", "RIVER_US1"]
        dimse = node.hosts["ingest"].app.state.dimse
        assert dimse.ready.wait(10)
        spool = Path(node.hosts["ingest"].app.state.deps.spool.directory)
        world = Scp(node, consortium, int(dimse.port), spool, temp_dir)
        # The SCP loads on the first connection; these tests time its timeouts, not its loading.
        first = world.associate("EAST_US1")
        assert first.is_established
        first.release()
        yield world
    finally:
        node.stop()
        tempfile.tempdir = saved


def admin_token(node: SingleNode) -> str:
    return demo_consortium().token(node.issuer, "county-admin")


def _echoscu(port: int, calling: str) -> subprocess.CompletedProcess[str]:
    command = [str(DCMTK_BIN / "echoscu"), "-aet", calling, "-aec", "SONOBRIDGE"]
    return subprocess.run(
        [*command, "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60
    )


def _storescu(port: int, calling: str, path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(DCMTK_BIN / "storescu"), "-aet", calling, "-aec", "SONOBRIDGE"]
    return subprocess.run(
        [*command, "127.0.0.1", str(port), str(path)], capture_output=True, text=True, timeout=60
    )


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """Send an A-ASSOCIATE-RQ header, then one byte every half second: no read ever times out."""
    try:
        sock.sendall(b"\x01\x00" + (4000).to_bytes(4, "big"))
        while not stop.wait(0.5):
            sock.sendall(b"\x00")
    except OSError:
        return


def _garbage(port: int, rng: random.Random) -> list[socket.socket]:
    sockets = []
    for _ in range(GARBAGE_EACH):
        noisy = socket.create_connection(("127.0.0.1", port))
        noisy.sendall(rng.randbytes(rng.randint(1, 4096)))
        silent = socket.create_connection(("127.0.0.1", port))
        half = socket.create_connection(("127.0.0.1", port))
        # An A-ASSOCIATE-RQ header announcing 200 bytes, followed by 20 of them.
        half.sendall(b"\x01\x00" + (200).to_bytes(4, "big") + rng.randbytes(20))
        sockets += [noisy, silent, half]
    return sockets


def _tricklers(port: int, count: int, stop: threading.Event) -> list[socket.socket]:
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for s in sockets:
        threading.Thread(target=_trickle, args=(s, stop), daemon=True).start()
    return sockets


def _all_slots(scp: Scp, count: int) -> bool:
    """Establish `count` associations at once; True when every one was accepted."""
    associations = [scp.associate("EAST_US1") for _ in range(count)]
    try:
        return all(a.is_established for a in associations)
    finally:
        for a in associations:
            if a.is_established:
                a.release()


def test_garbage_connections_give_every_slot_back_within_five_seconds(scp: Scp) -> None:
    slots = scp.scp.settings.dimse_max_associations
    rng = random.Random(13)
    stop = threading.Event()
    sockets = _garbage(scp.port, rng) + _tricklers(scp.port, 2, stop)
    started = time.monotonic()
    try:
        # The abuse takes effect: the garbage holds every slot before the timeouts act.
        held = 0
        while time.monotonic() - started < 1.0 and held < slots:
            held = scp.open_associations()
            time.sleep(0.02)
        assert held >= slots, held
        recovered = None
        while time.monotonic() - started < SLOTS_BACK_WITHIN_S + 5:
            if _all_slots(scp, slots):
                recovered = time.monotonic() - started
                break
            time.sleep(0.1)
        print(
            f"\n{len(sockets)} garbage connections held {held} of {slots} slots; "
            f"all {slots} slots usable again after {recovered and round(recovered, 2)} s"
        )
        assert recovered is not None and recovered < SLOTS_BACK_WITHIN_S
        # Stock clients get through while the garbage sockets are still open on our side.
        echo = _echoscu(scp.port, "EAST_US1")
        assert echo.returncode == 0, echo.stdout + echo.stderr
        path = scp.temp_dir.parent / "east.dcm"
        data = synthetic_instance(seed=21)
        path.write_bytes(data)
        stored = _storescu(scp.port, "EAST_US1", path)
        assert stored.returncode == 0, stored.stdout + stored.stderr
        sop = str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)
        assert scp.rows("sop_instance_uid", sop) == 1
    finally:
        stop.set()
        for s in sockets:
            s.close()


def test_idle_and_half_open_associations_are_dropped_after_the_network_timeout(scp: Scp) -> None:
    timeout = scp.scp.settings.dimse_network_timeout_seconds
    idle, half = scp.associate("EAST_US1"), scp.associate("RIVER_US1")
    assert idle.is_established and half.is_established
    # A P-DATA-TF PDU announcing 400 bytes, of which 40 come: the reader waits for the rest.
    half.dul.socket.socket.sendall(b"\x04\x00" + (400).to_bytes(4, "big") + bytes(40))
    started = time.monotonic()
    while time.monotonic() - started < timeout + 5 and scp.open_associations():
        time.sleep(0.05)
    dropped = time.monotonic() - started
    print(f"\nidle and half-open associations dropped after {dropped:.2f} s (timeout {timeout} s)")
    assert not scp.open_associations()
    assert dropped < timeout + 1.5
    assert idle.is_aborted
    for association in (idle, half):
        association.abort()


def test_no_more_associations_than_the_setting_allows_are_served(scp: Scp) -> None:
    slots = scp.scp.settings.dimse_max_associations
    held = [scp.associate("EAST_US1") for _ in range(slots)]
    try:
        assert all(a.is_established for a in held)
        extra = scp.associate("RIVER_US1")
        answer = extra.acceptor.primitive
        # A-ASSOCIATE-RJ: rejected transient, by the provider (presentation), local limit.
        assert extra.is_rejected
        assert (answer.result, answer.result_source, answer.diagnostic) == (0x02, 0x03, 0x02)
    finally:
        for a in held:
            a.release()
    again = scp.associate("RIVER_US1")
    assert again.is_established
    again.release()


def test_an_unknown_calling_ae_is_rejected_and_stores_nothing(scp: Scp) -> None:
    stranger = scp.associate("STRANGER")
    assert stranger.is_rejected
    answer = stranger.acceptor.primitive
    # A-ASSOCIATE-RJ: rejected permanent, by the service user, calling AE title not recognised.
    assert (answer.result, answer.result_source, answer.diagnostic) == (0x01, 0x01, 0x03)
    path = scp.temp_dir.parent / "stranger.dcm"
    data = synthetic_instance(seed=22)
    path.write_bytes(data)
    refused = _storescu(scp.port, "STRANGER", path)
    assert refused.returncode != 0
    assert scp.rows("sop_instance_uid", str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)) == 0
    assert _echoscu(scp.port, "STRANGER").returncode != 0


def test_a_township_device_cannot_store_into_another_townships_study(scp: Scp) -> None:
    study = generate_uid()
    with scp.client("nurse-river") as river:
        body = {
            "exam_id": str(uuid.uuid4()),
            "institution_id": "township-river",
            "device_serial": "PROBE-03L",
            "exam_type": "thyroid",
            "patient_ref": "p-river",
            "study_instance_uid": study,
        }
        assert river.post("/v1/exams", json=body).status_code == 201
    ds = pydicom.dcmread(io.BytesIO(synthetic_instance(study=study, seed=23)))
    east = scp.associate("EAST_US1")
    assert east.is_established
    try:
        refused = east.send_c_store(ds)
    finally:
        east.release()
    assert refused.Status == 0xC002, refused
    assert "another institution" in refused.ErrorComment
    assert scp.rows("study_instance_uid", study) == 0
    # The study's own township stores the same instance: the refusal was about the institution.
    river_device = scp.associate("RIVER_US1")
    try:
        assert river_device.send_c_store(ds).Status == 0x0000
    finally:
        river_device.release()
    assert scp.rows("study_instance_uid", study) == 1


def _file_with_meta(tmp: Path, ds: pydicom.Dataset, sop_class: str, sop: str) -> Path:
    """Write `ds` with file meta (what a chunked C-STORE command is built from) of our choice."""
    ds = copy.deepcopy(ds)
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.preamble = b"\x00" * 128
    path = tmp / f"{generate_uid()}.dcm"
    # Not enforce_file_format: that would rewrite the meta from the dataset.
    ds.save_as(path, enforce_file_format=False)
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    assert (meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID) == (sop_class, sop)
    return path


def test_requests_without_valid_uids_get_a_failure_status_and_leave_nothing(scp: Scp) -> None:
    study = generate_uid()
    good = pydicom.dcmread(io.BytesIO(synthetic_instance(study=study, seed=24)))
    no_sop = copy.deepcopy(good)
    no_sop.SOPInstanceUID = ""  # the request then carries no Affected SOP Instance UID
    no_series = copy.deepcopy(good)
    no_series.SOPInstanceUID = generate_uid()
    no_series.SeriesInstanceUID = ""
    bad_study = copy.deepcopy(good)
    bad_study.SOPInstanceUID = generate_uid()
    bad_study.StudyInstanceUID = "1.2.03"
    # Sent from files, the command carries the file meta's UIDs: valid ones that the dataset
    # contradicts (another SOP class; no SOP Instance UID at all).
    other_class = copy.deepcopy(good)
    other_class.SOPInstanceUID = generate_uid()
    other_class.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    blank_in_dataset = copy.deepcopy(good)
    blank_in_dataset.SOPInstanceUID = ""
    files = [
        _file_with_meta(scp.temp_dir.parent, ds, UltrasoundImageStorage, sop)
        for ds, sop in (
            (other_class, other_class.SOPInstanceUID),
            (blank_in_dataset, generate_uid()),
        )
    ]
    before = sorted(scp.spool.iterdir())
    device = scp.associate("EAST_US1")
    assert device.is_established
    try:
        statuses = [device.send_c_store(ds) for ds in (no_sop, no_series, bad_study)]
        _config.STORE_SEND_CHUNKED_DATASET = True
        try:
            statuses += [device.send_c_store(path) for path in files]
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = False
        # The association and its reader survive: the next instance on it is stored.
        last = device.send_c_store(good)
    finally:
        device.release()
    codes = [int(s.Status) for s in statuses]
    print(f"\nfailure statuses {[hex(c) for c in codes]}: {[s.ErrorComment for s in statuses]}")
    assert all(c in FAILURE_STATUSES for c in codes), codes
    # The dataset is not of the class its request names.
    assert (codes[3], statuses[3].ErrorComment) == (
        0xA900,
        "MediaStorageSOPClassUID contradicts SOPClassUID",
    )
    assert last.Status == 0x0000
    assert scp.rows("study_instance_uid", study) == 1
    assert scp.rows("study_instance_uid", "1.2.03") == 0
    assert scp.rows("sop_instance_uid", "") == 0
    assert list(scp.temp_dir.iterdir()) == []
    assert sorted(scp.spool.iterdir()) == before


def test_a_c_store_cut_off_mid_data_set_leaves_no_temp_file(scp: Scp) -> None:
    data = synthetic_instance(seed=25, rows=256, columns=256)
    ds = pydicom.dcmread(io.BytesIO(data))
    device = scp.associate("EAST_US1")
    assert device.is_established
    context = next(
        cx for cx in device.accepted_contexts if cx.abstract_syntax == UltrasoundImageStorage
    )
    request = C_STORE()
    request.MessageID, request.Priority = 7, 2
    request.AffectedSOPClassUID = UltrasoundImageStorage
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.DataSet = io.BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = list(message.encode_msg(context.context_id, 16_384))
    assert len(fragments) > 3
    raw = device.dul.socket.socket
    # The command and the first data set fragments, then the connection ends.
    for fragment in fragments[:3]:
        pdu = P_DATA_TF()
        pdu.from_primitive(fragment)
        raw.sendall(pdu.encode())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list(scp.temp_dir.iterdir()):
        time.sleep(0.02)
    assert list(scp.temp_dir.iterdir()), "the SCP did not start receiving the data set"
    raw.shutdown(socket.SHUT_RDWR)
    while time.monotonic() < deadline and list(scp.temp_dir.iterdir()):
        time.sleep(0.02)
    device.abort()
    assert list(scp.temp_dir.iterdir()) == []
    assert scp.rows("sop_instance_uid", str(ds.SOPInstanceUID)) == 0


def test_the_admin_api_round_trips_and_refuses_everyone_else(scp: Scp) -> None:
    path = "/v1/admin/dimse-callers/WEST%20US2"
    with scp.client("county-admin") as admin:
        created = admin.put(path, json={"institution_id": "township-west", "description": "cart"})
        assert created.status_code == 201, created.text
        assert created.json() == {
            "ae_title": "WEST US2",
            "institution_id": "township-west",
            "description": "cart",
        }
        # Trailing spaces are not significant in an AE title: the same registration.
        assert admin.get("/v1/admin/dimse-callers/WEST%20US2%20%20").json() == created.json()
        moved = admin.put(path, json={"institution_id": "township-east"})
        assert moved.status_code == 200
        assert admin.get(path).json()["institution_id"] == "township-east"
        titles = [c["ae_title"] for c in admin.get("/v1/admin/dimse-callers").json()["callers"]]
        assert titles == ["EAST_US1", "RIVER_US1", "WEST US2"]
        assert scp.associate("WEST US2").is_established
        for bad in ("A" * 17, "BAD%5CAE", "%20%20%20", "TAB%09AE", "%C3%A9CHO"):
            response = admin.put(
                f"/v1/admin/dimse-callers/{bad}", json={"institution_id": "township-west"}
            )
            assert response.status_code == 422, (bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        blank = admin.put(path, json={"institution_id": "   "})
        assert blank.status_code == 422
        for user in ("nurse-west", "dr-west", "dr-zhang", "coord-liu", "eng-zhao"):
            with scp.client(user) as other:
                for method, url in (("GET", path), ("GET", "/v1/admin/dimse-callers")):
                    response = other.request(method, url)
                    assert response.status_code == 403, (user, method, response.text)
                assert other.put(path, json={"institution_id": "township-west"}).status_code == 403
                response = other.delete(path)
                assert response.status_code == 403
                assert response.headers["content-type"] == "application/problem+json"
        with scp.client() as anonymous:
            assert anonymous.get("/v1/admin/dimse-callers").status_code == 401
        assert admin.get(path).json()["institution_id"] == "township-east"
        assert admin.delete(path).status_code == 204
        gone = admin.get(path)
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "application/problem+json"
        assert admin.delete(path).status_code == 404
    # Unregistered now: its next association is refused.
    assert scp.associate("WEST US2").is_rejected
