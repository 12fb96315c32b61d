"""Unit tests of the instance rules, manifests, access scopes and the multipart reader."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path

import pydicom
import pytest
from ingest.ingest_support import (
    DEVICE_TEXT,
    HOSTILE_MARKS,
    edited_instance,
    hostile_text_instances,
    pydicom_file,
    synthetic_instance,
)

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, InvalidInput
from sonobridge.ingest.adapters import dicomfile
from sonobridge.ingest.adapters.dicomfile import read_instance
from sonobridge.ingest.adapters.spool import Spool
from sonobridge.ingest.domain.model import (
    ManifestEntry,
    Scope,
    is_valid_uid,
    manifest_sha256,
    missing_instances,
    require_uid,
    writer_scope,
)
from sonobridge.ingest.domain.validation import (
    CHECKED_TEXT_ATTRIBUTES,
    Rejected,
    check_description,
    text_fault,
)
from sonobridge.ingest.entrypoints.dicomweb.multipart import MalformedMultipart, read_parts


def _check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    description, pixels, _ = read_instance(path)
    check_description(description, pixels)


@pytest.mark.parametrize(
    "name",
    [
        "examples_ybr_color.dcm",
        "examples_rgb_color.dcm",
        "examples_palette.dcm",
        "examples_jpeg2k.dcm",
    ],
)
def test_pydicom_ultrasound_files_pass_validation(tmp_path: Path, name: str) -> None:
    _check(tmp_path, pydicom_file(name))


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "examples_jpeg2k.dcm", "MR_small.dcm"])
def test_a_file_parsed_in_memory_reads_as_the_same_file_parsed_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(pydicom_file(name))
    in_memory = read_instance(path)
    monkeypatch.setattr(dicomfile, "IN_MEMORY_BYTES", 0)
    assert read_instance(path) == in_memory


def test_a_long_text_value_deferred_while_parsing_is_read_from_memory_as_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = pydicom.dcmread(io.BytesIO(pydicom_file("examples_ybr_color.dcm")))
    ds.add_new(0x0018A003, "UT", "z" * 100_000)  # above the parser's deferral size
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    in_memory = read_instance(path)
    monkeypatch.setattr(dicomfile, "IN_MEMORY_BYTES", 0)
    assert read_instance(path) == in_memory
    assert in_memory[2]["0018A003"]["Value"] == ["z" * 100_000]


def test_truncated_file_parsed_in_memory_is_rejected_as_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    reasons = []
    for limit in (len(data), 0):
        monkeypatch.setattr(dicomfile, "IN_MEMORY_BYTES", limit)
        with pytest.raises(Rejected) as caught:
            _check(tmp_path, data[:-10_000])
        reasons.append(caught.value.reason)
    assert reasons == ["truncated", "truncated"]


def test_truncated_cine_loop_is_rejected_as_truncated(tmp_path: Path) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    with pytest.raises(Rejected) as caught:
        _check(tmp_path, data[:-10_000])
    assert caught.value.reason == "truncated"


def test_native_pixel_data_shorter_than_declared_geometry_is_rejected(tmp_path: Path) -> None:
    data = synthetic_instance(frames=2)
    with pytest.raises(Rejected) as caught:
        _check(tmp_path, data[:-100])
    assert caught.value.reason == "truncated"


def test_garbage_is_not_dicom(tmp_path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        _check(tmp_path, b"\x00" * 128 + b"JUNK" + b"x" * 100)
    assert caught.value.reason == "not_dicom"


def test_uid_rules() -> None:
    assert is_valid_uid("1.2.840.10008.1.2.1")
    assert not is_valid_uid("1.2.03")
    assert not is_valid_uid("1.2.a")
    assert not is_valid_uid("1." + "2" * 70)


def test_manifest_hash_is_order_independent_and_missing_are_reported() -> None:
    a = ManifestEntry("1.2.3", "a" * 64)
    b = ManifestEntry("1.2.4", "b" * 64)
    assert manifest_sha256([a, b]) == manifest_sha256([b, a])
    assert missing_instances([a, b], {"1.2.3": "a" * 64}) == (["1.2.4"], [])
    assert missing_instances([a], {"1.2.3": "c" * 64}) == ([], ["1.2.3"])


def test_writer_scope_is_the_callers_institution() -> None:
    nurse = Principal("n", frozenset({"operator"}), "township-a", "county-1")
    assert writer_scope(nurse) == Scope("township-a", "county-1")
    with pytest.raises(Forbidden):
        writer_scope(Principal("s", frozenset({"service"})))


def test_multipart_reader_splits_parts_across_any_chunking(tmp_path: Path) -> None:
    body = (
        b"preamble\r\n--BND\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--BNx"
        b"\r\n--BND\r\nContent-Type: application/dicom\r\n\r\nsecond\r\n--BND--\r\n"
    )

    async def collect(size: int) -> list[bytes]:
        async def chunks():
            for i in range(0, len(body), size):
                yield body[i : i + size]

        found = []
        async for part in read_parts(chunks(), "BND", Spool(tmp_path, 10_000)):
            with part.body:
                found.append(part.body.path.read_bytes())
        return found

    for size in (1, 3, 7, len(body)):
        assert asyncio.run(collect(size)) == [b"first\r\n--BNx", b"second"]


def test_multipart_without_closing_delimiter_is_malformed(tmp_path: Path) -> None:
    async def run() -> None:
        async def chunks():
            yield b"--BND\r\n\r\nabc"

        async for part in read_parts(chunks(), "BND", Spool(tmp_path, 100)):
            part.body.discard()

    with pytest.raises(MalformedMultipart):
        asyncio.run(run())


@pytest.mark.parametrize(
    ("vr", "value", "fault"),
    [
        ("LO", "Acme Medical", None),
        ("LO", "L" * 64, None),
        # Real devices overrun their VR's length (a 20-character model name in SH): tolerated
        # up to four times it, as a swallowed module shows itself by its control characters.
        ("LO", "L" * 65, None),
        ("LO", "L" * 256, None),
        ("LO", "L" * 257, "longer than 4 times the 64 characters"),
        ("SH", "S" * 17, None),
        ("SH", "S" * 65, "longer than 4 times the 16 characters"),
        ("CS", "C" * 65, "longer than 4 times the 16 characters"),
        ("PN", "=".join(["P" * 256] * 3), None),
        ("PN", "Doe^John=" + "P" * 257, "characters its VR holds per component group"),
        ("LO", "Acme\x00Medical", "control characters"),
        ("LO", "Acme\x10\x00\x10\x00PN", "control characters"),
        ("LO", "Acme\x7f", "control characters"),
        ("LO", "Acme\x85", "control characters"),
        ("LO", "\x1b$B", None),  # an ISO 2022 escape, as Japanese names use
        ("CS", "U\x1bS", "control characters"),
        ("LT", "line one\r\nline two\tend", None),
        ("LT", "bell\x07", "control characters"),
        ("DA", "20260301", None),
        ("DA", "2026.03.01", None),  # the ACR-NEMA form PS3.5 asks readers to accept
        ("DA", "20260301-20260302", None),  # a range where one date belongs, as devices write
        ("DA", "2" * 41, "longer than 4 times the 10 characters"),
    ],
)
def test_text_values_are_held_to_their_vr(vr: str, value: str, fault: str | None) -> None:
    found = text_fault(vr, value)
    assert (found is None) if fault is None else (found is not None and fault in found)
    assert found is None or value not in found


@pytest.mark.parametrize("name", list(hostile_text_instances()))
def test_an_instance_with_a_hostile_text_attribute_is_refused(tmp_path: Path, name: str) -> None:
    data = hostile_text_instances()[name]
    with pytest.raises(Rejected) as refused:
        _check(tmp_path, data)
    assert refused.value.reason == "malformed_attribute"
    assert not any(mark in refused.value.detail for mark in HOSTILE_MARKS), refused.value.detail


def test_device_text_within_its_vr_is_kept_as_sent(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(edited_instance(**DEVICE_TEXT))
    description, pixels, metadata = read_instance(path)
    check_description(description, pixels)
    assert metadata["00080070"]["Value"] == ["Acme Medical"]
    assert metadata["00181020"]["Value"] == ["1.0.2", "fw 7"]
    assert description.device_serial == "SN-0001"


def test_every_text_attribute_qido_returns_at_study_and_series_level_is_checked() -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from sonobridge.ingest.entrypoints.dicomweb import views

    returned = (*views._STUDY_LEVEL, *views._SERIES_LEVEL)
    # Sequences are rendered as they came; SeriesNumber is read as an integer (_header_int).
    text = {k for k in returned if dictionary_VR(tag_for_keyword(k)) not in ("SQ", "IS")}
    assert text - set(CHECKED_TEXT_ATTRIBUTES) == set()


@pytest.mark.parametrize(
    ("meta", "value"),
    [
        ("MediaStorageSOPInstanceUID", "QUIXOTRIX^ZEBULONIA"),
        ("MediaStorageSOPClassUID", "CANARY-ID-7731"),
    ],
)
def test_a_file_meta_uid_that_is_no_uid_is_refused_without_echo(
    tmp_path: Path, meta: str, value: str
) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(synthetic_instance())
    description, pixels, _ = read_instance(path)
    keyword = "media_sop_instance_uid" if "Instance" in meta else "media_sop_class_uid"
    with pytest.raises(Rejected) as refused:
        check_description(dataclasses.replace(description, **{keyword: value}), pixels)
    assert refused.value.reason == "malformed_uid"
    assert meta in refused.value.detail and value not in refused.value.detail


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("QUIXOTRIX^ZEBULONIA", "characters other than digits and dots"),
        ("1.2.03", "starts with 0"),
        ("1." * 40, "80 characters"),
        ("", "empty"),
    ],
)
def test_a_uid_in_a_request_is_refused_saying_why_without_echo(value: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        require_uid("StudyInstanceUID", value)
    assert why in refused.value.detail
    assert not value or value not in refused.value.detail
