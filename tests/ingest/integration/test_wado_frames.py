"""WADO-RS frame retrieval and study/series rendering over real HTTP with dicomweb-client."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from ingest.ingest_support import RunningIngest, pydicom_file, synthetic_instance, uids
from PIL import Image
from pydicom.encaps import generate_frames
from requests.exceptions import HTTPError

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _dicomweb(ingest: RunningIngest, **token: str) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"{ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {ingest.token(**token)}"},
    )


def _stow(ingest: RunningIngest, data: bytes) -> tuple[str, str, str]:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with ingest.client() as client:
        response = client.post(
            "/dicomweb/studies",
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            },
        )
    assert response.status_code == 200, response.text
    return uids(data)


def _frames_url(study: str, series: str, sop: str, frames: str) -> str:
    return f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}"


def _part_headers(response_content: bytes, content_type: str) -> list[str]:
    boundary = content_type.split("boundary=")[1].strip('"')
    parts = response_content.split(f"--{boundary}".encode())[1:-1]
    return [p.removeprefix(b"\r\n").split(b"\r\n\r\n", 1)[0].decode() for p in parts]


def test_jpeg_cine_frames_come_back_as_the_stored_fragments(ingest: RunningIngest) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = _stow(ingest, data)
    original = pydicom.dcmread(io.BytesIO(data))
    expected = list(generate_frames(original.PixelData, number_of_frames=30))
    client = _dicomweb(ingest)
    wanted = [1, 2, 17, 30]
    frames = client.retrieve_instance_frames(
        study, series, sop, frame_numbers=wanted, media_types=("image/jpeg",)
    )
    assert frames == [expected[n - 1] for n in wanted]
    assert frames[0][:2] == b"\xff\xd8"
    # The JPEG bitstream decodes to a frame of the declared size.
    assert Image.open(io.BytesIO(frames[0])).size == (original.Columns, original.Rows)
    # No Accept preference: the stored media type, labelled with its transfer syntax.
    assert client.retrieve_instance_frames(study, series, sop, frame_numbers=[5]) == [expected[4]]
    with ingest.client() as http:
        response = http.get(_frames_url(study, series, sop, "3,4"))
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith('multipart/related; type="image/jpeg"')
    headers = _part_headers(response.content, content_type)
    assert len(headers) == 2
    assert all(f"Content-Type: image/jpeg; transfer-syntax={JPEG_BASELINE}" in h for h in headers)


def test_viewer_asking_for_octet_stream_with_any_syntax_gets_the_compressed_frame(
    ingest: RunningIngest,
) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = _stow(ingest, data)
    expected = list(
        generate_frames(pydicom.dcmread(io.BytesIO(data)).PixelData, number_of_frames=30)
    )
    with ingest.client() as http:
        response = http.get(
            _frames_url(study, series, sop, "2"),
            # What OHIF's image loader sends.
            headers={
                "Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"
            },
        )
    assert response.status_code == 200, response.text
    content_type = response.headers["content-type"]
    headers = _part_headers(response.content, content_type)
    assert headers == [
        f"Content-Type: application/octet-stream; transfer-syntax={JPEG_BASELINE}\r\n"
        f"Content-Length: {len(expected[1])}"
    ]
    assert expected[1] in response.content


def test_jpeg_2000_frame_comes_back_as_image_jp2(ingest: RunningIngest) -> None:
    data = pydicom_file("examples_jpeg2k.dcm")
    study, series, sop = _stow(ingest, data)
    original = pydicom.dcmread(io.BytesIO(data))
    (expected,) = generate_frames(original.PixelData, number_of_frames=1)
    client = _dicomweb(ingest)
    frames = client.retrieve_instance_frames(
        study, series, sop, frame_numbers=[1], media_types=(("image/jp2", JPEG_2000_LOSSLESS),)
    )
    assert frames == [expected]
    with ingest.client() as http:
        response = http.get(_frames_url(study, series, sop, "1"))
    assert response.headers["content-type"].startswith('multipart/related; type="image/jp2"')
    assert f"image/jp2; transfer-syntax={JPEG_2000_LOSSLESS}" in response.text[:300]


@pytest.mark.parametrize("name", ["examples_rgb_color.dcm", "examples_palette.dcm"])
def test_uncompressed_frame_equals_the_pixel_bytes(ingest: RunningIngest, name: str) -> None:
    data = pydicom_file(name)
    study, series, sop = _stow(ingest, data)
    original = pydicom.dcmread(io.BytesIO(data))
    client = _dicomweb(ingest)
    frames = client.retrieve_instance_frames(
        study, series, sop, frame_numbers=[1], media_types=("application/octet-stream",)
    )
    assert frames == [original.PixelData]
    decoded = np.frombuffer(frames[0], dtype=np.uint8).reshape(original.pixel_array.shape)
    assert np.array_equal(decoded, original.pixel_array)


def test_uncompressed_multiframe_frames_are_cut_at_the_right_offsets(
    ingest: RunningIngest,
) -> None:
    data = synthetic_instance(frames=5, rows=16, columns=24, seed=7)
    study, series, sop = _stow(ingest, data)
    pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
    client = _dicomweb(ingest)
    frames = client.retrieve_instance_frames(
        study, series, sop, frame_numbers=[5, 1, 3], media_types=("application/octet-stream",)
    )
    assert frames == [pixels[4].tobytes(), pixels[0].tobytes(), pixels[2].tobytes()]
    with ingest.client() as http:
        response = http.get(_frames_url(study, series, sop, "2"))
    headers = _part_headers(response.content, response.headers["content-type"])
    assert headers[0].startswith(
        f"Content-Type: application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    )


def test_bad_frame_requests_get_clear_4xx_answers_and_leave_no_spooled_files(
    ingest: RunningIngest,
) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = _stow(ingest, data)
    with ingest.client() as http:
        beyond = http.get(_frames_url(study, series, sop, "1,31"))
        assert beyond.status_code == 422
        assert beyond.headers["content-type"] == "application/problem+json"
        assert "frame 31 does not exist; the instance has 30" in beyond.json()["detail"]
        for bad in ("0", "x", "1,,2", "-1"):
            response = http.get(_frames_url(study, series, sop, bad))
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["reason"] == "bad_frame"
        refused = http.get(
            _frames_url(study, series, sop, "1"),
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
        assert refused.status_code == 406
        assert "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" in refused.json()["detail"]
        missing = http.get(_frames_url(study, series, "1.2.3.4.5", "1"))
        assert missing.status_code == 404
        ok = http.get(_frames_url(study, series, sop, "1"))
        assert ok.status_code == 200
    spool = Path(ingest.settings.spool_path())
    assert [p.name for p in spool.iterdir() if p.name.endswith(".render.dcm")] == []


def test_another_institution_cannot_read_frames(ingest: RunningIngest) -> None:
    data = synthetic_instance(seed=11)
    study, series, sop = _stow(ingest, data)
    with ingest.client(user="nurse-9", institution="township-z", consortium="county-9") as http:
        response = http.get(_frames_url(study, series, sop, "1"))
    assert response.status_code == 404
    anonymous = DICOMwebClient(url=f"{ingest.base_url}/dicomweb")
    with pytest.raises(HTTPError) as raised:
        anonymous.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    assert raised.value.response.status_code == 401


def test_study_and_series_render_their_first_image(ingest: RunningIngest) -> None:
    study = "1.2.826.0.1.3680043.8.498.4242"
    series = "1.2.826.0.1.3680043.8.498.4242.1"
    first = synthetic_instance(study=study, series=series, rows=40, columns=50, seed=1)
    ds = pydicom.dcmread(io.BytesIO(first))
    second = pydicom.dcmread(
        io.BytesIO(synthetic_instance(study=study, series=series, rows=20, columns=30, seed=2))
    )
    second.InstanceNumber = 2
    buffer = io.BytesIO()
    second.save_as(buffer, enforce_file_format=True)
    _stow(ingest, buffer.getvalue())
    _stow(ingest, first)
    client = _dicomweb(ingest)
    for url in (
        f"/dicomweb/studies/{study}/rendered",
        f"/dicomweb/studies/{study}/series/{series}/rendered",
    ):
        with ingest.client() as http:
            response = http.get(url, headers={"Accept": "image/png"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        # Instance number 1 (40x50) is first, whatever order the instances arrived in.
        assert image.size == (50, 40)
        assert np.array_equal(np.asarray(image.convert("RGB")), ds.pixel_array)
    jpeg = client.retrieve_series_rendered(study, series, media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).size == (50, 40)
    with ingest.client() as http:
        study_jpeg = http.get(f"/dicomweb/studies/{study}/rendered")
        assert study_jpeg.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(study_jpeg.content)).size == (50, 40)
        assert http.get("/dicomweb/studies/1.2.3.999/rendered").status_code == 404
