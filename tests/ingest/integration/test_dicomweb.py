"""DICOMweb over real HTTP with the dicomweb-client library and pydicom's ultrasound files."""

from __future__ import annotations

import io
import uuid

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from ingest.ingest_support import (
    PYDICOM_US_FILES,
    RunningIngest,
    app_upload,
    new_exam,
    pydicom_file,
    synthetic_instance,
    uids,
)
from PIL import Image


def _dicomweb(ingest: RunningIngest, **token: str) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"{ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {ingest.token(**token)}"},
    )


def _stow_raw(ingest: RunningIngest, files: list[bytes], study: str | None = None):
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
            for data in files
        )
        + f"--{boundary}--\r\n".encode()
    )
    with ingest.client() as client:
        return client.post(
            "/dicomweb/studies" + (f"/{study}" if study else ""),
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            },
        )


def _wado_raw(ingest: RunningIngest, study: str, series: str, sop: str) -> bytes:
    with ingest.client() as client:
        response = client.get(
            f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
    assert response.status_code == 200, response.text
    boundary = response.headers["content-type"].split("boundary=")[1]
    part = response.content.split(f"--{boundary}".encode())[1]
    return part.split(b"\r\n\r\n", 1)[1][:-2]


@pytest.mark.parametrize("name", PYDICOM_US_FILES)
def test_ultrasound_file_stored_by_stow_comes_back_identical(
    ingest: RunningIngest, name: str
) -> None:
    data = pydicom_file(name)
    study, series, sop = uids(data)
    response = _stow_raw(ingest, [data])
    assert response.status_code == 200, response.text
    assert _wado_raw(ingest, study, series, sop) == data
    client = _dicomweb(ingest)
    found = client.search_for_instances(study_instance_uid=study)
    assert sop in [i["00080018"]["Value"][0] for i in found]
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    frames = int(header.get("NumberOfFrames", 1) or 1)
    for frame in {1, frames}:
        jpeg = client.retrieve_instance_frames_rendered(
            study, series, sop, frame_numbers=[frame], media_types=("image/jpeg",)
        )
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG"
        assert image.size == (header.Columns, header.Rows)
    png = client.retrieve_instance_frames_rendered(
        study, series, sop, frame_numbers=[1], media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).size == (header.Columns, header.Rows)


def test_ultrasound_files_uploaded_by_the_app_are_found_and_retrieved(
    ingest: RunningIngest,
) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = uids(data)
    with ingest.client() as client:
        exam_id = new_exam(client)
        assert app_upload(client, exam_id, data).status_code == 204
    client = _dicomweb(ingest)
    studies = client.search_for_studies(search_filters={"PatientID": "204"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [study]
    retrieved = client.retrieve_instance(study, series, sop)
    original = pydicom.dcmread(io.BytesIO(data))
    assert retrieved.SOPInstanceUID == sop
    assert retrieved.PixelData == original.PixelData
    assert _wado_raw(ingest, study, series, sop) == data
    metadata = client.retrieve_instance_metadata(study, series, sop)
    assert metadata["00280008"]["Value"] == [30]


def test_dicomweb_client_stores_several_instances_and_queries_them(
    ingest: RunningIngest,
) -> None:
    study = "1.2.826.0.1.3680043.8.498.77"
    datasets = [
        pydicom.dcmread(io.BytesIO(synthetic_instance(study=study, seed=i, patient_id="Q-9")))
        for i in range(3)
    ]
    client = _dicomweb(ingest)
    result = client.store_instances(datasets=datasets)
    assert len(result.ReferencedSOPSequence) == 3
    assert len(client.search_for_series(study)) == 3
    assert client.search_for_studies(search_filters={"PatientName": "Test*"})
    assert client.search_for_studies(search_filters={"StudyDate": "20260101-20261231"})
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "US"})
    assert not client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert not client.search_for_studies(search_filters={"PatientID": "nobody"})
    assert len(client.search_for_instances(study, search_filters={"limit": 2})) == 2
    retrieved = client.retrieve_study(study)
    assert sorted(d.SOPInstanceUID for d in retrieved) == sorted(d.SOPInstanceUID for d in datasets)


def test_stow_with_one_bad_part_stores_the_rest_and_names_the_failure(
    ingest: RunningIngest,
) -> None:
    good = synthetic_instance(seed=1)
    response = _stow_raw(ingest, [good, b"not dicom at all"])
    assert response.status_code == 202
    body = response.json()
    assert len(body["00081199"]["Value"]) == 1
    assert body["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert "not a DICOM file" in response.headers["Warning"]
    contradicting = _stow_raw(ingest, [synthetic_instance(seed=2)], study="1.2.3.999")
    assert contradicting.status_code == 409
    assert contradicting.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
