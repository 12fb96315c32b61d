"""DIMSE conformance (PS3.4 Storage, PS3.8 negotiation) of the C-STORE SCP in both editions.

Stock clients (pynetdicom, dcmtk storescu and echoscu) over real TCP, calling with an AE title
registered through ingest's admin API: only a registered caller is associated, every storage
SOP class of the standard is accepted, non-image objects are stored, a context offering several
transfer syntaxes gets the compressed one (else explicit VR), one dataset by STOW-RS and C-STORE
is a duplicate in either order, and the README's storescu line stores the JPEG cine unchanged.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from ingest.conformance.conformance_support import IDENTITY, Server
from ingest.ingest_support import pydicom_file, synthetic_instance, uids
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    _STORAGE_CLASSES,
    SimplifiedAdultEchoSRStorage,
    TwelveLeadECGWaveformStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    Verification,
)

DCMTK_BIN = Path("/usr/bin")
README = Path(__file__).resolve().parents[3] / "services/ingest/README.md"
IMPLICIT = "1.2.840.10008.1.2"
# pynetdicom's SCU proposes at most this many presentation contexts in one association (PS3.8).
MAX_CONTEXTS = 128
CALLER = "EAST_US1"  # the README's calling AE title (the demo consortium's cart scanner)
JPEG_CINE = "examples_ybr_color.dcm"  # pydicom's multi-frame US in JPEG baseline


def _stow(server: Server, data: bytes) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    with server.http() as client:
        return client.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )


def _wado(server: Server, data: bytes) -> bytes:
    return server.retrieve_file(*uids(data))


def _associate(server: Server, *contexts: tuple[str, list[str]], caller: str = CALLER) -> Any:
    ae = AE(ae_title=caller)
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    return ae.associate("127.0.0.1", server.dimse_port, ae_title="SONOBRIDGE")


def _established(server: Server, *contexts: tuple[str, list[str]]) -> Any:
    assoc = _associate(server, *contexts)
    assert assoc.is_established
    return assoc


@pytest.fixture(scope="module")
def dimse(server: Server) -> Server:
    """The module's server, with CALLER registered through the admin API for IDENTITY's township."""
    if not (DCMTK_BIN / "storescu").exists():
        # dcmtk is a client for the test, installed on demand from the distribution.
        subprocess.run(["apt-get", "install", "-y", "-q", "dcmtk"], check=True, timeout=600)
    server.register_caller(CALLER, IDENTITY["institution"])
    return server


def _dataset_bytes(data: bytes) -> bytes:
    """Return a DICOM file's bytes after its preamble and File Meta Information."""
    with io.BytesIO(data) as fp:
        pydicom.filereader.read_preamble(fp, False)
        pydicom.filereader._read_file_meta_info(fp)
        return fp.read()


def _file(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _patient_study(ds: Dataset, modality: str) -> None:
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = "PAT-CONF"
    ds.PatientName = "Conformance^Synthetic"
    ds.StudyDate, ds.StudyTime = "20260301", "101500"
    ds.SeriesNumber = ds.InstanceNumber = 1


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def simplified_adult_echo_sr() -> bytes:
    """A Simplified Adult Echo SR (TID 5300 root only): no pixel data at all."""
    ds = Dataset()
    ds.SOPClassUID = SimplifiedAdultEchoSRStorage
    _patient_study(ds, "SR")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("125300", "DCM", "Adult Echocardiography")])
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    lvef = Dataset()
    lvef.RelationshipType, lvef.ValueType = "CONTAINS", "NUM"
    lvef.ConceptNameCodeSequence = Sequence([_code("10230-1", "LN", "LV Ejection Fraction")])
    measured = Dataset()
    measured.NumericValue = "58"
    measured.MeasurementUnitsCodeSequence = Sequence([_code("%", "UCUM", "%")])
    lvef.MeasuredValueSequence = Sequence([measured])
    ds.ContentSequence = Sequence([lvef])
    return _file(ds)


def twelve_lead_ecg() -> bytes:
    """A 12-lead ECG: waveform data in a sequence, no pixel data."""
    ds = Dataset()
    ds.SOPClassUID = TwelveLeadECGWaveformStorage
    _patient_study(ds, "ECG")
    group = Dataset()
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = 12
    group.NumberOfWaveformSamples = 500
    group.SamplingFrequency = "500"
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    channels = []
    for lead in range(12):
        channel = Dataset()
        channel.ChannelSourceSequence = Sequence([_code(f"5.6.3-9-{lead + 1}", "SCPECG", "Lead")])
        channel.ChannelSensitivity = "1"
        channels.append(channel)
    group.ChannelDefinitionSequence = Sequence(channels)
    samples = np.random.default_rng(7).integers(-500, 500, size=(500, 12), dtype=np.int16)
    group.WaveformData = samples.tobytes()
    ds.WaveformSequence = Sequence([group])
    return _file(ds)


def _send(dimse: Server, data: bytes, syntaxes: list[str]) -> int:
    """C-STORE one file (its dataset bytes as they are) in a context of the given syntaxes."""
    ds = pydicom.dcmread(io.BytesIO(data))
    assoc = _established(dimse, (str(ds.SOPClassUID), syntaxes))
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status)
    finally:
        assoc.release()


def _echoscu(server: Server, caller: str) -> subprocess.CompletedProcess[str]:
    argv = [str(DCMTK_BIN / "echoscu"), "-aet", caller, "-aec", "SONOBRIDGE"]
    return subprocess.run(
        [*argv, "127.0.0.1", str(server.dimse_port)], capture_output=True, text=True, timeout=60
    )


def test_only_callers_registered_through_the_admin_api_are_associated(dimse: Server) -> None:
    echoed = _echoscu(dimse, CALLER)
    assert echoed.returncode == 0, echoed.stdout + echoed.stderr
    stranger = "CONF_STRANGER"
    refused = _echoscu(dimse, stranger)
    assert refused.returncode != 0
    assert "reject" in (refused.stdout + refused.stderr).lower()
    assert _associate(dimse, (Verification, [ExplicitVRLittleEndian]), caller=stranger).is_rejected

    dimse.register_caller(stranger, IDENTITY["institution"])
    assoc = _associate(dimse, (Verification, [ExplicitVRLittleEndian]), caller=stranger)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()

    with dimse.http(user="county-admin", roles=("admin",), institution="county") as admin:
        assert admin.delete(f"/v1/admin/dimse-callers/{stranger}").status_code == 204
    assert _echoscu(dimse, stranger).returncode != 0


def test_every_storage_sop_class_of_the_standard_is_accepted_and_non_images_are_stored(
    dimse: Server,
) -> None:
    standard = sorted(set(_STORAGE_CLASSES.values()))
    accepted = []
    for start in range(0, len(standard), MAX_CONTEXTS):
        chunk = standard[start : start + MAX_CONTEXTS]
        assoc = _established(dimse, *[(uid, [ExplicitVRLittleEndian]) for uid in chunk])
        accepted += [cx.abstract_syntax for cx in assoc.accepted_contexts]
        assoc.release()
    missing = sorted(set(standard) - set(accepted))
    assert not missing, f"{len(missing)} storage SOP classes refused: {missing[:5]}"
    print(f"{len(accepted)} of {len(standard)} storage SOP classes accepted")

    for data in (simplified_adult_echo_sr(), twelve_lead_ecg()):
        assert _send(dimse, data, [ExplicitVRLittleEndian]) == 0x0000
        (row,) = dimse.rows(uids(data)[2])
        assert row.status == "stored"
        # No frames for a consumer to decode: consumers skip it instead of failing on it.
        assert row.number_of_frames == 0
        assert _dataset_bytes(_wado(dimse, data)) == _dataset_bytes(data)
        study, series, sop = uids(data)
        path = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
        with dimse.http() as client:
            found = client.get(f"/dicomweb/studies/{study}/instances")
            assert [i["00080018"]["Value"][0] for i in found.json()] == [sop]
            assert client.get(f"{path}/metadata").status_code == 200
            # Viewers asking an SR or ECG for pixels get a clear refusal, never a 5xx.
            for pixels in (f"{path}/rendered", f"{path}/frames/1"):
                answer = client.get(pixels, headers={"Accept": "*/*"})
                assert 400 <= answer.status_code < 500, (pixels, answer.status_code)


def test_a_context_offering_several_syntaxes_gets_the_compressed_one_else_explicit_vr(
    dimse: Server,
) -> None:
    cine = pydicom_file(JPEG_CINE)
    assert pydicom.dcmread(io.BytesIO(cine)).file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    offered = [IMPLICIT, ExplicitVRLittleEndian, JPEGBaseline8Bit]
    assoc = _established(
        dimse,
        (UltrasoundMultiFrameImageStorage, offered),
        (UltrasoundImageStorage, [IMPLICIT, ExplicitVRLittleEndian]),
    )
    try:
        chosen = {cx.abstract_syntax: cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
        assert chosen == {
            UltrasoundMultiFrameImageStorage: JPEGBaseline8Bit,
            UltrasoundImageStorage: ExplicitVRLittleEndian,
        }
        assert assoc.send_c_store(pydicom.dcmread(io.BytesIO(cine))).Status == 0x0000
        image = synthetic_instance(seed=3)
        assert assoc.send_c_store(pydicom.dcmread(io.BytesIO(image))).Status == 0x0000
    finally:
        assoc.release()
    # Neither was decoded and re-encoded on the way: the stored datasets are the sent ones.
    for data, syntax in ((cine, JPEGBaseline8Bit), (image, ExplicitVRLittleEndian)):
        stored = _wado(dimse, data)
        assert pydicom.dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == syntax
        assert _dataset_bytes(stored) == _dataset_bytes(data)


@pytest.mark.parametrize("first", ["stow", "cstore"])
def test_one_dataset_by_stow_and_by_c_store_is_a_duplicate_in_either_order(
    dimse: Server, first: str
) -> None:
    data = synthetic_instance(seed=11)
    sop = uids(data)[2]

    def by_stow() -> None:
        answer = _stow(dimse, data)
        assert answer.status_code == 200, answer.text
        assert "00081198" not in answer.json(), answer.json()

    def by_cstore() -> None:
        assert _send(dimse, data, [ExplicitVRLittleEndian]) == 0x0000

    steps = [by_stow, by_cstore] if first == "stow" else [by_cstore, by_stow]
    steps[0]()
    kept = _wado(dimse, data)
    steps[1]()
    # One instance, the first copy kept as it was: the files differ only in their File Meta.
    assert len(dimse.rows(sop)) == 1
    assert _wado(dimse, data) == kept
    assert _dataset_bytes(kept) == _dataset_bytes(data)

    # Another dataset under the same SOP Instance UID still conflicts on both channels.
    other = synthetic_instance(seed=12, sop=sop, study=uids(data)[0], series=uids(data)[1])
    assert _send(dimse, other, [ExplicitVRLittleEndian]) == 0xC001
    assert _stow(dimse, other).status_code == 409
    assert _wado(dimse, data) == kept


def test_the_readme_storescu_line_stores_the_jpeg_cine_unchanged(
    dimse: Server, tmp_path: Path
) -> None:
    lines = re.findall(r"`(storescu [^`]*)`", README.read_text().replace("\n", " "))
    (line,) = [line for line in lines if "-xy" in line]
    argv = shlex.split(re.sub(r"\s+", " ", line))
    # pydicom's JPEG-baseline cine under new UIDs (its frames untouched), so it is new here.
    ds = pydicom.dcmread(io.BytesIO(pydicom_file(JPEG_CINE)))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "pydicom.dcm", enforce_file_format=True)
    # dcmtk re-encodes what it sends (e.g. drops a blank SH's padding spaces); written once by
    # dcmtk, the file is what storescu puts on the wire, byte for byte.
    cine = tmp_path / "cine.dcm"
    converted = subprocess.run(
        [str(DCMTK_BIN / "dcmconv"), str(tmp_path / "pydicom.dcm"), str(cine)], timeout=60
    )
    assert converted.returncode == 0
    # The README's host, port and file name stand for this server's and the pydicom cine.
    argv = [str(DCMTK_BIN / "storescu"), *argv[1:-3], "127.0.0.1", str(dimse.dimse_port), str(cine)]
    assert f"-aet {CALLER}" in " ".join(argv), "the README calls with a registered AE title"
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    data = cine.read_bytes()
    stored = _wado(dimse, data)
    assert pydicom.dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert _dataset_bytes(stored) == _dataset_bytes(data)
    # The frames are pydicom's JPEG-baseline fragments, never decoded and re-encoded.
    assert pydicom.dcmread(io.BytesIO(stored)).PixelData == ds.PixelData
