"""Text attributes that break their VR are refused on every channel, and never echoed back.

A wrong length makes a device attribute (the Manufacturer) swallow the patient module after it;
inference would take its text for a device model. Each channel refuses such an instance with its
own clear error: STOW-RS a failed-SOP item, tus problem+json, C-STORE a DICOM failure status.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ingest.ingest_support import (
    DEVICE_TEXT,
    HOSTILE_MARKS,
    RunningIngest,
    app_upload,
    edited_instance,
    hostile_text_instances,
    new_exam,
    synthetic_instance,
    uids,
)
from pynetdicom import AE
from pynetdicom.sop_class import UltrasoundImageStorage
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

STUDY = "1.2.826.0.1.3680043.8.498.4242"
FAILED_SOP_SEQUENCE, FAILURE_REASON, REFERENCED_SOP = "00081198", "00081197", "00081155"
CANNOT_UNDERSTAND = 0xC000


def _echoes(text: str) -> bool:
    return any(mark in text for mark in HOSTILE_MARKS)


def _assert_nothing_stored(ingest: RunningIngest, good: int = 0) -> None:
    assert ingest.count("instances") == good
    assert len(ingest.stored_keys("dicom/")) == good
    assert ingest.stored_keys("uploads/") == []


def test_stow_refuses_each_hostile_text_attribute_by_its_failed_sop_item(
    ingest: RunningIngest,
) -> None:
    hostile = hostile_text_instances(study=STUDY)
    good = synthetic_instance(study=STUDY, seed=5)
    warnings: list[str] = []

    def keep_warning(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        warnings.append(response.headers.get("Warning", ""))
        return response

    client = DICOMwebClient(
        url=f"{ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {ingest.token()}"},
        callback=keep_warning,
    )
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in [good, *hostile.values()]]
    result = client.store_instances(datasets=datasets, study_instance_uid=STUDY)

    stored = [item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence]
    failed = {
        item.ReferencedSOPInstanceUID: item.FailureReason for item in result.FailedSOPSequence
    }
    assert stored == [uids(good)[2]]
    assert failed == {uids(data)[2]: CANNOT_UNDERSTAND for data in hostile.values()}
    [warning] = warnings
    assert warning.count("is not a valid") == len(hostile), warning
    assert not _echoes(warning), warning
    _assert_nothing_stored(ingest, good=1)


def test_stow_of_only_hostile_instances_is_a_conflict_not_a_server_error(
    ingest: RunningIngest,
) -> None:
    client = DICOMwebClient(
        url=f"{ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {ingest.token()}"},
    )
    swallowing = hostile_text_instances()["manufacturer swallowing the patient's name and ID"]
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances(datasets=[pydicom.dcmread(io.BytesIO(swallowing))])
    response = refused.value.response
    assert response.status_code == 409
    [item] = response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert item[FAILURE_REASON]["Value"] == [CANNOT_UNDERSTAND]
    assert "Manufacturer is not a valid LO value" in response.headers["Warning"]
    assert "Test^Synthetic" not in response.text + response.headers["Warning"]
    _assert_nothing_stored(ingest)


def test_tus_refuses_each_hostile_text_attribute_with_problem_json(ingest: RunningIngest) -> None:
    answers = {}
    with ingest.client() as client:
        exam_id = new_exam(client)
        for name, data in hostile_text_instances().items():
            response = app_upload(client, exam_id, data)
            answers[name] = response
    for name, response in answers.items():
        assert response.status_code == 422, (name, response.status_code, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["reason"] == "malformed_attribute", (name, problem)
        assert not _echoes(response.text) and "Test^Synthetic" not in response.text
    _assert_nothing_stored(ingest)


def test_stock_tus_client_gets_the_refusal_of_a_swallowed_patient_module(
    ingest: RunningIngest,
) -> None:
    # tuspy, as an app built on a stock tus client would upload it, in chunks with checksums.
    data = hostile_text_instances()["manufacturer swallowing the patient's name and ID"]
    with ingest.client() as client:
        exam_id = new_exam(client)
    uploader = tus.TusClient(
        f"{ingest.base_url}/v1/exams/{exam_id}/uploads",
        headers={"Authorization": f"Bearer {ingest.token()}"},
    ).uploader(file_stream=io.BytesIO(data), chunk_size=len(data) // 3 + 1, upload_checksum=True)
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 422
    body = (refused.value.response_content or b"").decode()
    assert '"malformed_attribute"' in body
    assert not _echoes(body) and "Test^Synthetic" not in body
    _assert_nothing_stored(ingest)


def test_c_store_refuses_each_hostile_text_attribute_with_a_failure_status(
    ingest: RunningIngest,
) -> None:
    ingest.register_caller("PROBE1", "township-a")
    ae = AE(ae_title="PROBE1")
    ae.add_requested_context(UltrasoundImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", ingest.dimse_port, ae_title="SONOBRIDGE")
    assert assoc.is_established
    statuses = {}
    try:
        for name, data in hostile_text_instances().items():
            status = assoc.send_c_store(pydicom.dcmread(io.BytesIO(data)))
            statuses[name] = (int(status.Status), str(status.get("ErrorComment", "")))
    finally:
        assoc.release()
    for name, (code, comment) in statuses.items():
        assert code == CANNOT_UNDERSTAND, (name, hex(code), comment)
        assert "is not a valid" in comment and not _echoes(comment), (name, comment)
        assert "Test^Synthetic" not in comment
    _assert_nothing_stored(ingest)


# Text as devices and hostile files write it: printable ASCII, Latin and CJK letters, control
# characters (NUL, the tags of a swallowed element, ESC, DEL, C1), over and under each VR's length.
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"),
        st.sampled_from("\x00\x01\x09\x0a\x10\x1b\x1c\x1f\x7f\x85éßÖ中文"),
    ),
    max_size=300,
)


def _metadata_value(ingest: RunningIngest, data: bytes, tag: str) -> list[str]:
    study, series, sop = uids(data)
    with ingest.client() as client:
        response = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata")
        assert response.status_code == 200, response.text
        [metadata] = response.json()
        found = client.get(
            f"/dicomweb/studies/{study}/instances",
            params={"SOPInstanceUID": sop, "includefield": tag},
        )
        assert found.status_code == 200, found.text
        assert found.json()[0][tag] == metadata[tag]
    # Leading spaces of LO and SH are padding too, which DICOM JSON may keep or drop.
    return [str(v).lstrip(" ") for v in metadata[tag].get("Value", [])]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keyword=st.sampled_from(["Manufacturer", "ManufacturerModelName", "StationName"]),
    value=_TEXT,
)
def test_any_device_text_is_stored_as_sent_or_refused_with_a_4xx(
    ingest: RunningIngest, keyword: str, value: str
) -> None:
    data = edited_instance(
        synthetic_instance(), SpecificCharacterSet="ISO_IR 192", **{**DEVICE_TEXT, keyword: value}
    )
    with ingest.client() as client:
        exam_id = new_exam(client)
        response = app_upload(client, exam_id, data)
    assert response.status_code < 500, response.text
    event("refused" if response.status_code >= 400 else "stored")
    sent = value.strip(" ").rstrip("\x00 ")
    # Spaces and trailing NULs around a value are padding (PS3.5 6.2), not part of it. ESC
    # may open a character set's escape sequence in LO and SH; no other control may occur.
    # Overruns of the VR's length are tolerated up to four times it, as real devices write.
    breaks = bool(re.search(r"[\x00-\x1a\x1c-\x1f\x7f-\x9f]", sent)) or len(sent) > 4 * (
        16 if keyword == "StationName" else 64
    )
    assert (response.status_code >= 400) == breaks, (response.status_code, response.text)
    if breaks:
        assert response.json()["reason"] == "malformed_attribute", response.text
        assert value.strip(" ") == "" or value.strip(" ") not in response.text
        return
    assert response.status_code == 204, response.text
    tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
    assert _metadata_value(ingest, data, tag) == ([sent] if sent else [])
