"""Hostile-input helpers: a single node with known callers, hypothesis strategies, state checks."""

from __future__ import annotations

import io
import os
import sqlite3
import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pydicom
from hypothesis import strategies as st
from ingest.ingest_support import synthetic_instance
from pydicom.uid import generate_uid

from sonobridge.node.consortium import COUNTY, Consortium, demo_consortium
from sonobridge.node.demo import node_settings_for
from sonobridge.node.edition import NodePorts, SingleNode

PROBLEM_JSON = "application/problem+json"
# The DIMSE caller the fuzz suite registers (the AE registry may refuse unknown callers).
FUZZ_AE = "FUZZPROBE"
FUZZ_INSTITUTION = "township-east"
# People of the demo consortium, one per role, plus a machine (service) caller.
CALLERS = ("nurse-east", "dr-east", "dr-river", "dr-zhang", "coord-liu", "eng-zhao", "county-admin")
# CI form: bounded and seeded. `make fuzz` raises the scale for a long run.
SCALE = float(os.environ.get("SONOBRIDGE_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("SONOBRIDGE_FUZZ_SEED", "20261129"))
REQUEST_TIMEOUT = 30.0


def examples(ci_count: int) -> int:
    """Hypothesis examples for one target: `ci_count` in CI, times SONOBRIDGE_FUZZ_SCALE."""
    return max(1, int(ci_count * SCALE))


def node_settings(consortium: Consortium) -> dict[str, Any]:
    """The demo consortium's settings plus the fuzz suite's registered DIMSE caller."""
    extra = node_settings_for(consortium)
    # Notification streams end after this long; the fuzzer reads each to its end.
    extra["reporting"] = {"sse_max_seconds": 0.3}
    return extra


def register_dimse_caller(
    ingest_url: str, admin_token: str, ae_title: str, institution: str
) -> None:
    """Register a calling AE title for an institution through ingest's admin API."""
    response = httpx.put(
        f"{ingest_url}/v1/admin/dimse-callers/{ae_title}",
        json={"institution_id": institution, "description": "test caller"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code in (200, 201), response.text


def start_node(data_dir: Path) -> tuple[SingleNode, Consortium]:
    """Start the single-node edition on free ports and wait until every service is ready."""
    from sonobridge.node.cli import wait_ready

    consortium = demo_consortium()
    node = SingleNode(
        data_dir, ports=NodePorts.ephemeral(), extra_settings=node_settings(consortium)
    )
    node.start()
    try:
        wait_ready(node)
        admin = consortium.token(node.issuer, "county-admin")
        register_dimse_caller(node.urls()["ingest"], admin, FUZZ_AE, FUZZ_INSTITUTION)
    except BaseException:
        node.stop()
        raise
    return node, consortium


def tokens(node: SingleNode, consortium: Consortium) -> dict[str, str]:
    """Valid bearer tokens of several roles and institutions (and one service token)."""
    found = {user: consortium.token(node.issuer, user) for user in CALLERS}
    found["service"] = node.issuer.issue("svc-fuzz", ("service",), COUNTY, consortium=consortium.id)
    return found


@dataclass
class Tally:
    """What a fuzz target sent and how it was answered."""

    target: str
    cases: int = 0
    unsendable: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def check_http(
        self, response: httpx.Response | Any, what: str, also: tuple[str, ...] = ()
    ) -> None:
        """Record a response; note a failure for any 5xx or a 4xx that is not problem+json.

        `also` names other error bodies a standard prescribes (STOW-RS answers a refused
        instance with 409 and a DICOM JSON store response).
        """
        status = response.status_code
        self.statuses[status] += 1
        headers = response.headers
        content_type = headers.get("content-type", "")
        if isinstance(content_type, list):  # schemathesis keeps header values as lists
            content_type = content_type[0] if content_type else ""
        if status >= 500:
            self.failures.append(f"{what}: {status} {_body(response)[:300]!r}")
        elif status >= 400 and content_type.split(";")[0].strip() not in (PROBLEM_JSON, *also):
            self.failures.append(f"{what}: {status} not problem+json ({content_type!r})")

    def summary(self) -> str:
        """One line for the CI log: cases run and the status spread."""
        spread = ", ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"fuzz {self.target}: {self.cases} cases ({self.unsendable} not sendable, "
            f"seed {SEED}) statuses {{{spread}}}"
        )


def report(tally: Tally, capsys: Any) -> None:
    """Print the tally's summary past pytest's capture; fail with its first failures."""
    with capsys.disabled():
        print(f"\n{tally.summary()}")
    assert not tally.failures, "\n".join(tally.failures[:20])


def _body(response: Any) -> str:
    content = getattr(response, "content", b"") or b""
    return content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)


# --- malformed DICOM -------------------------------------------------------------------------

_PIXEL_MODULE = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
)


def base_instance(seed: int = 0, **patient: str) -> bytes:
    """A small valid ultrasound instance, UIDs derived from `seed` (so a seeded run repeats)."""
    data = synthetic_instance(
        seed=seed,
        rows=16,
        columns=16,
        **{k: generate_uid(entropy_srcs=[f"fuzz-{k}-{seed}"]) for k in ("study", "series", "sop")},
    )
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in patient.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dataset_start(data: bytes) -> int:
    """Offset of the first element after the file meta group (group 0002)."""
    length = struct.unpack_from("<L", data, 132 + 8)[0]
    return 132 + 12 + length


def element_offsets(data: bytes) -> list[int]:
    """Offsets of the dataset's top-level explicit-VR elements (walked without pydicom)."""
    offsets, at = [], dataset_start(data)
    while at + 8 <= len(data):
        vr = data[at + 4 : at + 6]
        offsets.append(at)
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR"):
            length = struct.unpack_from("<L", data, at + 8)[0]
            if length == 0xFFFFFFFF:
                break
            at += 12 + length
        else:
            at += 8 + struct.unpack_from("<H", data, at + 6)[0]
    return offsets


def wrong_length(data: bytes, offset: int, length: int) -> bytes:
    """Rewrite one element's length field (16-bit for short VRs, 32-bit for long ones)."""
    buf = bytearray(data)
    vr = data[offset + 4 : offset + 6]
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR"):
        struct.pack_into("<L", buf, offset + 8, length & 0xFFFFFFFF)
    else:
        struct.pack_into("<H", buf, offset + 6, length & 0xFFFF)
    return bytes(buf)


def deep_sequence(data: bytes, depth: int) -> bytes:
    """Insert nested undefined-length sequences `depth` deep just before the pixel data."""
    item_start = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    item_end = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq_end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    # (0040,0275) Request Attributes Sequence, undefined length.
    seq_start = b"\x40\x00\x75\x02SQ\x00\x00\xff\xff\xff\xff"
    nested = seq_start * 1
    for _ in range(depth - 1):
        nested += item_start + seq_start
    nested += item_start + item_end + seq_end
    for _ in range(depth - 1):
        nested += item_end + seq_end
    at = data.rfind(b"\xe0\x7f\x10\x00")
    return data[:at] + nested + data[at:]


def without(data: bytes, keywords: list[str]) -> bytes:
    """Drop attributes (e.g. parts of the pixel module) and re-encode."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword in keywords:
        if keyword in ds:
            delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


@st.composite
def malformed_dicom(draw: st.DrawFn, base: bytes) -> tuple[str, bytes]:
    """One broken instance: bit flips, truncation, a wrong length, deep nesting, no pixel module."""
    kind = draw(
        st.sampled_from(
            ["bitflip", "truncate", "wrong_length", "deep_sequence", "no_pixel_module", "garbage"]
        )
    )
    if kind == "bitflip":
        buf = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(128, len(buf) - 1))
            buf[at] ^= 1 << draw(st.integers(0, 7))
        return kind, bytes(buf)
    if kind == "truncate":
        return kind, base[: draw(st.integers(0, len(base) - 1))]
    if kind == "wrong_length":
        offsets = element_offsets(base)
        offset = draw(st.sampled_from(offsets))
        length = draw(
            st.one_of(st.integers(0, 300), st.sampled_from([0xFFFF, 0xFFFFFFFF, 0x7FFFFFF0]))
        )
        return kind, wrong_length(base, offset, length)
    if kind == "deep_sequence":
        return kind, deep_sequence(base, draw(st.integers(2, 3000)))
    if kind == "no_pixel_module":
        dropped = draw(
            st.lists(st.sampled_from(_PIXEL_MODULE), min_size=1, max_size=4, unique=True)
        )
        return kind, without(base, dropped)
    return kind, draw(st.binary(min_size=0, max_size=2048))


def stow_body(parts: list[bytes]) -> tuple[bytes, str]:
    """Encode instances as a STOW-RS multipart/related body; return it and its content type."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def fresh_uids(data: bytes) -> bytes:
    """The same instance under new study/series/SOP UIDs (so a valid one stores anew)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# --- tus headers -----------------------------------------------------------------------------

# Header values as raw bytes: obs-text (0x80-0xff) is legal on the wire, as in "Upload-Length: ²".
_HEADER_BYTES = st.binary(min_size=0, max_size=40).filter(
    lambda b: not any(c in b for c in (0, 10, 13)) and b == b.strip()
)


def integer_header() -> st.SearchStrategy[bytes]:
    """Values for Upload-Length/Upload-Offset: plausible, huge, negative, odd digits, junk."""
    return st.one_of(
        st.integers(0, 10_000).map(lambda n: str(n).encode()),
        st.integers(2**31, 2**80).map(lambda n: str(n).encode()),
        st.integers(-(2**70), -1).map(lambda n: str(n).encode()),
        st.sampled_from(["²", "١٢", "1_000", " 12", "+5", "0x10", "1e3", "", "9" * 40]).map(
            lambda s: s.encode("utf-8")
        ),
        st.just(b"\xb2"),
        _HEADER_BYTES,
    )


def tus_version() -> st.SearchStrategy[bytes]:
    """Tus-Resumable values: mostly the right one, sometimes not."""
    # Mostly right, so that most cases reach the checks behind the version check.
    odd = st.sampled_from([b"0.2.2", b"1.0", b""]) | _HEADER_BYTES
    return st.integers(0, 9).flatmap(lambda n: st.just(b"1.0.0") if n < 8 else odd)


def upload_metadata() -> st.SearchStrategy[bytes]:
    """Upload-Metadata: valid pairs, broken base64, non-UTF-8 values, junk."""
    import base64

    pair = st.tuples(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
        st.one_of(
            st.binary(max_size=60).map(base64.b64encode),
            st.text(max_size=30).map(lambda t: base64.b64encode(t.encode())),
            _HEADER_BYTES,
        ),
    ).map(lambda kv: kv[0].encode() + b" " + kv[1])
    return st.one_of(
        st.lists(pair, max_size=4).map(lambda pairs: b",".join(pairs)),
        _HEADER_BYTES,
    )


def upload_checksum() -> st.SearchStrategy[bytes | None]:
    """Upload-Checksum: absent, a supported algorithm with good or bad base64, unknown ones."""
    import base64

    return st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from([b"sha1", b"sha256", b"md5", b"crc32", b"SHA1", b""]),
            st.one_of(st.binary(max_size=40).map(base64.b64encode), _HEADER_BYTES),
        ).map(lambda t: t[0] + b" " + t[1]),
        _HEADER_BYTES,
    )


# --- state after the storm -------------------------------------------------------------------


def partial_state(data_dir: Path) -> list[str]:
    """Index rows without their object, and completed exams with missing instances."""
    problems: list[str] = []
    objects = data_dir / "objects" / "data"
    db = sqlite3.connect(f"file:{data_dir / 'ingest.sqlite3'}?mode=ro", uri=True)
    try:
        stored = {}
        for sop, key, size in db.execute(
            "SELECT sop_instance_uid, object_key, size_bytes FROM instances WHERE status='stored'"
        ):
            path = objects / key
            if not path.is_file():
                problems.append(f"instance {sop}: index row without object {key}")
            elif path.stat().st_size != size:
                problems.append(f"instance {sop}: object {key} is not {size} bytes")
            stored[sop] = key
        for (exam_id,) in db.execute("SELECT exam_id FROM exams WHERE state='completed'"):
            for (sop,) in db.execute(
                "SELECT sop_instance_uid FROM manifest_items WHERE exam_id=?", (exam_id,)
            ):
                if sop not in stored:
                    problems.append(f"completed exam {exam_id} lacks instance {sop}")
    finally:
        db.close()
    return problems


# --- gRPC requests from the proto descriptors ------------------------------------------------

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}


def _field_strategy(field: Any, depth: int, strings: list[str]) -> st.SearchStrategy[Any] | None:
    from google.protobuf.descriptor import FieldDescriptor
    from google.protobuf.message_factory import GetMessageClass

    kind = field.type
    single: st.SearchStrategy[Any] | None
    if kind == FieldDescriptor.TYPE_STRING:
        single = st.one_of(st.sampled_from(strings or [""]), st.text(max_size=80))
    elif kind == FieldDescriptor.TYPE_BYTES:
        single = st.binary(max_size=512)
    elif kind == FieldDescriptor.TYPE_BOOL:
        single = st.booleans()
    elif kind == FieldDescriptor.TYPE_DOUBLE:
        single = st.floats()
    elif kind == FieldDescriptor.TYPE_FLOAT:
        single = st.floats(width=32)
    elif kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        single = st.one_of(st.sampled_from(known), st.integers(-3, 1000))
    elif kind == FieldDescriptor.TYPE_MESSAGE:
        if depth >= 2:
            return None
        single = message_strategy(GetMessageClass(field.message_type), depth + 1, strings)
    else:
        name = {
            v: k.removeprefix("TYPE_").lower()
            for k, v in vars(FieldDescriptor).items()
            if k.startswith("TYPE_") and isinstance(v, int)
        }[kind]
        low, high = _INT_RANGES.get(name, (-(2**31), 2**31 - 1))
        single = st.one_of(
            st.integers(low, high), st.integers(-2, 1000).filter(lambda n: low <= n <= high)
        )
    if field.label == FieldDescriptor.LABEL_REPEATED:
        return st.lists(single, max_size=3)
    return single


def message_strategy(
    cls: Any, depth: int = 0, strings: list[str] | None = None
) -> st.SearchStrategy[Any]:
    """Any message of `cls`: every field optional, values anywhere in their type's range."""
    fields = {}
    for descriptor in cls.DESCRIPTOR.fields:
        strategy = _field_strategy(descriptor, depth, strings or [])
        if strategy is not None:
            fields[descriptor.name] = strategy

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            target = getattr(message, name)
            if isinstance(value, list):
                for item in value:
                    if hasattr(target, "add") and not isinstance(
                        item, (int, float, str, bytes, bool)
                    ):
                        target.add().CopyFrom(item)
                    else:
                        target.append(item)
            elif hasattr(value, "DESCRIPTOR"):
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)
