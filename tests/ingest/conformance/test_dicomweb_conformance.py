"""DICOMweb conformance (PS3.18) as a stock client sees it: dicomweb-client against both editions.

Each test pins one point of issue 14: STOW-RS of any storage class with complete failure items
and URLs, QIDO-RS includefield / errors / media types, WADO-RS metadata with the transfer syntax
and BulkDataURIs that dicomweb-client's retrieve_bulkdata can follow.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from ingest.conformance.conformance_support import Server, single_server
from ingest.ingest_support import (
    app_upload,
    collect_events,
    new_exam,
    pydicom_file,
    synthetic_instance,
)
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from sonobridge.api.events.v1 import events_pb2, topics
from sonobridge.node.edition import NodePorts, SingleNode

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
PALETTE_ENTRIES = 65536  # 16-bit entries: each table is 128 KiB, far over the 16 KiB inline limit


# ---------------------------------------------------------------------------------------------
# Test objects: pydicom's own report, ECG and ultrasound files under fresh UIDs
# ---------------------------------------------------------------------------------------------


def _fresh(name: str, study: str, series: str | None = None) -> Dataset:
    ds = pydicom.dcmread(io.BytesIO(pydicom_file(name)))
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "CONF-1"
    return ds


def _synthetic(study: str, **values: Any) -> Dataset:
    ds = pydicom.dcmread(io.BytesIO(synthetic_instance(study=study, seed=7)))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _big_palette_us(study: str) -> Dataset:
    """An ultrasound palette-colour image whose three 16-bit LUTs are 128 KiB each."""
    ds = _fresh("examples_palette.dcm", study)
    ramp = np.arange(PALETTE_ENTRIES, dtype="<u2")
    for colour, table in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", ramp ^ 0x5A5A)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [0, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.tobytes())
    return ds


def _file_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value", [])
    if not values:
        return None
    value = values[0]
    return value.get("Alphabetic") if isinstance(value, dict) else value


# ---------------------------------------------------------------------------------------------
# STOW-RS (PS3.18 10.5, Annex I)
# ---------------------------------------------------------------------------------------------


def test_stow_stores_a_comprehensive_sr_and_a_12_lead_ecg(server: Server) -> None:
    study = generate_uid()
    report, ecg = _fresh("test-SR.dcm", study), _fresh("waveform_ecg.dcm", study)
    assert (report.SOPClassUID, ecg.SOPClassUID) == (COMPREHENSIVE_SR, TWELVE_LEAD_ECG)
    client = server.dicomweb()
    result = client.store_instances(datasets=[report, ecg])
    assert "FailedSOPSequence" not in result
    assert {str(i.ReferencedSOPInstanceUID) for i in result.ReferencedSOPSequence} == {
        report.SOPInstanceUID,
        ecg.SOPInstanceUID,
    }
    found = client.search_for_instances(study_instance_uid=study)
    assert sorted(_value(i, "00080016") for i in found) == sorted(
        [COMPREHENSIVE_SR, TWELVE_LEAD_ECG]
    )
    assert all("00280010" not in i for i in found), "objects without pixels state no geometry"
    back = client.retrieve_instance(*_uids(ecg))
    assert back.WaveformSequence[0].WaveformData == ecg.WaveformSequence[0].WaveformData
    assert client.retrieve_instance(*_uids(report)).ContentSequence == report.ContentSequence
    with server.http() as http:
        frames = http.get(
            f"/dicomweb/studies/{study}/series/{report.SeriesInstanceUID}"
            f"/instances/{report.SOPInstanceUID}/frames/1"
        )
    assert 400 <= frames.status_code < 500, frames.text
    assert frames.headers["content-type"] == "application/problem+json"


def test_failed_sop_items_name_the_refused_instance(server: Server) -> None:
    study = generate_uid()
    good = _synthetic(study)
    stray = _synthetic(generate_uid(), SOPInstanceUID=generate_uid())
    stray.file_meta.MediaStorageSOPInstanceUID = stray.SOPInstanceUID
    result = server.dicomweb().store_instances(datasets=[good, stray], study_instance_uid=study)
    [failed] = result.FailedSOPSequence
    assert failed.ReferencedSOPClassUID == stray.SOPClassUID
    assert failed.ReferencedSOPInstanceUID == stray.SOPInstanceUID
    assert failed.FailureReason == 0xA900
    assert [i.ReferencedSOPInstanceUID for i in result.ReferencedSOPSequence] == [
        good.SOPInstanceUID
    ]


def test_unsupported_transfer_syntax_is_failure_reason_c122(server: Server) -> None:
    study = generate_uid()
    deflated = _synthetic(study, SOPInstanceUID=generate_uid())
    deflated.file_meta.MediaStorageSOPInstanceUID = deflated.SOPInstanceUID
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    result = server.dicomweb().store_instances(datasets=[_synthetic(study), deflated])
    [failed] = result.FailedSOPSequence
    assert failed.FailureReason == 0xC122
    assert failed.ReferencedSOPInstanceUID == deflated.SOPInstanceUID


def test_post_studies_answers_the_study_retrieve_url(server: Server) -> None:
    study = generate_uid()
    datasets = [_synthetic(study, SOPInstanceUID=generate_uid()) for _ in range(2)]
    for ds in datasets:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    result = server.dicomweb().store_instances(datasets=datasets)
    assert result.RetrieveURL == f"{server.base_url}/dicomweb/studies/{study}"
    for item in result.ReferencedSOPSequence:
        assert item.RetrieveURL.startswith(f"{server.base_url}/dicomweb/studies/{study}/series/")


def test_retrieve_urls_keep_the_port_or_use_the_public_base_url(tmp_path: Path) -> None:
    public = "https://pacs.county.example:8443/sonobridge"
    with single_server(tmp_path, public_base_url=public) as configured:
        study = generate_uid()
        ds = _synthetic(study)
        result = configured.dicomweb().store_instances(datasets=[ds])
        [found] = configured.dicomweb().search_for_studies(
            search_filters={"StudyInstanceUID": study}
        )
        metadata = configured.dicomweb().retrieve_instance_metadata(*_uids(ds))
    assert result.RetrieveURL == f"{public}/dicomweb/studies/{study}"
    assert result.ReferencedSOPSequence[0].RetrieveURL.startswith(f"{public}/dicomweb/studies/")
    assert _value(found, "00081190") == f"{public}/dicomweb/studies/{study}"
    assert metadata["7FE00010"]["BulkDataURI"].startswith(f"{public}/dicomweb/studies/{study}/")


# ---------------------------------------------------------------------------------------------
# QIDO-RS (PS3.18 8.3, 10.6)
# ---------------------------------------------------------------------------------------------


def test_qido_includefield_by_keyword_or_tag_at_study_series_and_instance_level(
    server: Server,
) -> None:
    study = generate_uid()
    ds = _synthetic(
        study,
        ReferringPhysicianName="Referrer^Rita",
        PatientBirthDate="19700102",
        PatientSex="F",
        SeriesDate="20260301",
        SeriesTime="101600",
        ProtocolName="CAROTID L",
    )
    client = server.dicomweb()
    client.store_instances(datasets=[ds])
    by_study = {"StudyInstanceUID": study}
    [plain] = client.search_for_studies(search_filters=by_study)
    assert _value(plain, "00080090") == "Referrer^Rita", "a study-level return key by default"
    assert _value(plain, "00100030") == "19700102"
    [study_item] = client.search_for_studies(
        search_filters=by_study, fields=["00080060", "PatientSex", "00100030"]
    )
    assert (_value(study_item, "00080060"), _value(study_item, "00100040")) == ("US", "F")
    [series_item] = client.search_for_series(
        study, fields=["SeriesDate", "SeriesTime", "00080090", "PatientBirthDate"]
    )
    assert _value(series_item, "00080021") == "20260301"
    assert _value(series_item, "00080031") == "101600"
    assert _value(series_item, "00080090") == "Referrer^Rita"
    assert _value(series_item, "00100030") == "19700102"
    [instance_item] = client.search_for_instances(
        study, fields=["PatientBirthDate", "ProtocolName"]
    )
    assert _value(instance_item, "00100030") == "19700102"
    assert _value(instance_item, "00181030") == "CAROTID L"
    [every_study] = client.search_for_studies(search_filters=by_study, fields=["all"])
    assert _value(every_study, "00100040") == "F"
    [every_series] = client.search_for_series(study, fields=["all"])
    assert _value(every_series, "00181030") == "CAROTID L"


def test_qido_answers_invalid_query_values_with_400_problem_json(server: Server) -> None:
    bad = [
        ("/dicomweb/studies", {"StudyDate": "2026-03-01"}),
        ("/dicomweb/studies", {"StudyInstanceUID": "1.2.abc"}),
        ("/dicomweb/studies", {"limit": "-1"}),
        ("/dicomweb/series", {"SeriesNumber": "one"}),
        ("/dicomweb/instances", {"includefield": "NoSuchKeyword"}),
        ("/dicomweb/studies/not-a-uid/series", {}),
    ]
    with server.http() as http:
        answers = [(path, query, http.get(path, params=query)) for path, query in bad]
    for path, query, answer in answers:
        assert answer.status_code == 400, (path, query, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", (path, query)
        assert answer.json()["status"] == 400


def test_qido_and_metadata_answer_406_to_dicom_xml(server: Server) -> None:
    study = generate_uid()
    ds = _synthetic(study)
    server.dicomweb().store_instances(datasets=[ds])
    _, series, sop = _uids(ds)
    paths = [
        "/dicomweb/studies",
        f"/dicomweb/studies/{study}/series",
        f"/dicomweb/studies/{study}/series/{series}/instances",
        f"/dicomweb/studies/{study}/metadata",
        f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata",
    ]
    with server.http() as http:
        for path in paths:
            for accept in (
                "application/dicom+xml",
                'multipart/related; type="application/dicom+xml"',
            ):
                answer = http.get(path, headers={"Accept": accept})
                assert answer.status_code == 406, (path, accept, answer.status_code)
                assert answer.headers["content-type"] == "application/problem+json"
            json_answer = http.get(path, headers={"Accept": "application/dicom+json"})
            assert json_answer.status_code == 200, (path, json_answer.text)


# ---------------------------------------------------------------------------------------------
# WADO-RS metadata and bulk data (PS3.18 10.4, F.2.6)
# ---------------------------------------------------------------------------------------------


def test_metadata_carries_the_transfer_syntax(server: Server) -> None:
    study = generate_uid()
    jpeg2k = _fresh("examples_jpeg2k.dcm", study)
    native = _synthetic(study)
    client = server.dicomweb()
    client.store_instances(datasets=[jpeg2k, native])
    for ds in (jpeg2k, native):
        metadata = client.retrieve_instance_metadata(*_uids(ds))
        assert metadata["00020010"] == {
            "vr": "UI",
            "Value": [str(ds.file_meta.TransferSyntaxUID)],
        }
    series = client.retrieve_series_metadata(study, str(native.SeriesInstanceUID))
    assert [m["00020010"]["Value"] for m in series] == [["1.2.840.10008.1.2.1"]]


def test_large_palette_tables_and_pixel_data_come_as_bulkdata_uris_that_serve_their_bytes(
    server: Server,
) -> None:
    study = generate_uid()
    image = _big_palette_us(study)
    client = server.dicomweb()
    client.store_instances(datasets=[image])
    metadata = client.retrieve_instance_metadata(*_uids(image))
    instance_url = (
        f"{server.base_url}/dicomweb/studies/{study}/series/{image.SeriesInstanceUID}"
        f"/instances/{image.SOPInstanceUID}/"
    )
    for tag in ("00281201", "00281202", "00281203", "7FE00010"):
        assert metadata[tag]["vr"] == "OW", tag
        assert metadata[tag]["BulkDataURI"].startswith(instance_url), tag
    assert _value(metadata, "00281101") == 0, "the small descriptor stays inline"
    red = client.retrieve_bulkdata(metadata["00281201"]["BulkDataURI"])
    blue = client.retrieve_bulkdata(metadata["00281203"]["BulkDataURI"])
    pixels = client.retrieve_bulkdata(metadata["7FE00010"]["BulkDataURI"])
    assert red == [image.RedPaletteColorLookupTableData]
    assert blue == [image.BluePaletteColorLookupTableData]
    assert pixels == [image.PixelData]
    print(
        f"{server.edition}: palette tables {len(red[0])} B each and pixel data {len(pixels[0])} B "
        "served through BulkDataURIs"
    )


def test_bulkdata_uris_reach_into_sequences_and_compressed_pixel_data(server: Server) -> None:
    study = generate_uid()
    ecg = _fresh("waveform_ecg.dcm", study)
    cine = _fresh("examples_ybr_color.dcm", study)
    client = server.dicomweb()
    client.store_instances(datasets=[ecg, cine])
    waveforms = client.retrieve_instance_metadata(*_uids(ecg))["54000100"]["Value"]
    assert len(waveforms) == len(ecg.WaveformSequence) == 2
    for stored, original in zip(waveforms, ecg.WaveformSequence, strict=True):
        uri = stored["54001010"].get("BulkDataURI")
        if len(original.WaveformData) > 16 * 1024:
            assert client.retrieve_bulkdata(uri) == [original.WaveformData]
        else:
            assert uri is None and "InlineBinary" in stored["54001010"]
    pixels = client.retrieve_instance_metadata(*_uids(cine))["7FE00010"]
    assert pixels["vr"] == "OB"
    frames = client.retrieve_bulkdata(pixels["BulkDataURI"])
    assert frames == list(generate_frames(cine.PixelData, number_of_frames=30))
    with server.http() as http:
        forged = http.get(pixels["BulkDataURI"].replace("7FE00010", "00281201-200"))
    assert forged.status_code == 404, "a URI must name a real element, not a byte range"


# ---------------------------------------------------------------------------------------------
# A report in an exam reaches inference, which passes over it
# ---------------------------------------------------------------------------------------------


def test_an_exam_with_a_structured_report_is_inferred_without_errors(tmp_path: Path) -> None:
    node = SingleNode(tmp_path, ports=NodePorts.ephemeral(), services=("ingest", "inference"))
    node.start()
    try:
        study = generate_uid()
        image = synthetic_instance(study=study, seed=3, rows=96, columns=128)
        report = _file_bytes(_fresh("test-SR.dcm", study))
        url = node.urls()["ingest"]
        server = Server("single", url, node.hosts["ingest"], node.issuer)
        with server.http() as http:
            exam_id = new_exam(http, study_instance_uid=study)
            for data in (image, report):
                answer = app_upload(http, exam_id, data)
                assert answer.status_code == 204, answer.text
            manifest = [
                {
                    "sop_instance_uid": pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID,
                    "sha256": hashlib.sha256(d).hexdigest(),
                }
                for d in (image, report)
            ]
            done = http.post(f"/v1/exams/{exam_id}/complete", json={"instances": manifest})
            assert done.json()["state"] == "completed", done.text
        events = collect_events(
            node.bus,
            topics.INFERENCE_COMPLETED,
            count=1,
            timeout=60,
            where=lambda e: e.context.study_instance_uid == study,
        )
    finally:
        node.stop()
    assert len(events) == 1
    assert events[0].status == events_pb2.INFERENCE_STATUS_COMPLETED, events[0].error_message
    assert events[0].error_message == ""
    assert [q.sop_instance_uid for q in events[0].instance_quality] == [
        manifest[0]["sop_instance_uid"]
    ]
