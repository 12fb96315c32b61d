"""Property-based fuzzing of inference's InferStream on its real grpc.aio server.

Hostile stream metadata, hostile frames (garbage tensors, unknown models, undecodable bytes),
half-closes, cancels at random points (lockstep or with frames in flight), and more streams at
once than the server holds. Each stream ends OK or with a status the proto documents (never
UNKNOWN, never INTERNAL); the server logs no error, gives back every slot, and both its ports
still answer a valid frame as before. Seeded and bounded as the rest of the suite
(SONOBRIDGE_FUZZ_SCALE, SONOBRIDGE_FUZZ_SEED; `make fuzz` runs the long form).
"""

from __future__ import annotations

import io
import logging
import math
import queue
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from inference.inference_support import Service, start_service
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from security.fuzz_support import REQUEST_TIMEOUT, SEED, Tally, examples, message_strategy, report

from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.auth import LocalIssuer
from sonobridge.inference.entrypoints.grpc_server import SERVICE_NAME, array_to_tensor
from sonobridge.inference.entrypoints.grpc_stream import INSTITUTION_HEADER

pytestmark = pytest.mark.slow

# Cases per target in CI: about 20 s on two cores together; `make fuzz` multiplies them.
STREAM_CASES = 500
CONCURRENT_CASES = 60
MODEL = "image-quality"
INSTITUTION = "township-a"
# Small, so that a few concurrent streams already overflow it.
MAX_STREAMS = 3
METHOD = f"/{SERVICE_NAME}/InferStream"
Code = grpc.StatusCode
# What the proto documents for InferStream (RESOURCE_EXHAUSTED: an image over the size bound).
DOCUMENTED = frozenset(
    {
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.UNAVAILABLE,
        Code.UNAUTHENTICATED,
        Code.PERMISSION_DENIED,
        Code.RESOURCE_EXHAUSTED,
    }
)
DATA_TYPES = [v.number for v in inference_pb2.DataType.DESCRIPTOR.values]
ITEMSIZE = {1: 4, 2: 2, 3: 1, 4: 4, 5: 8}
# What grpc's client answers itself, without sending, for metadata core will not put on the wire.
CLIENT_REFUSED = (grpc.StatusCode.INTERNAL, "Invalid metadata")
# Keys gRPC reserves or that carry the stream's own headers.
RESERVED_KEYS = {"authorization", INSTITUTION_HEADER, "te", "content-type", "user-agent", "host"}

Expect = Literal["answer", "any"] | frozenset[grpc.StatusCode]


@dataclass(frozen=True)
class Frame:
    """One message on the wire, what kind of hostile it is, and how the server must take it."""

    kind: str
    data: bytes = field(repr=False)
    expect: Expect = "any"
    request_id: str = ""


@dataclass(frozen=True)
class Opening:
    """A stream's metadata and the status its open must end with (None: accepted)."""

    kind: str
    metadata: tuple[tuple[str, str], ...]
    refusal: grpc.StatusCode | None


@dataclass
class Outcome:
    """What the client saw: answers in order, the final status, whether it cancelled."""

    answers: list[inference_pb2.InferResponse]
    code: grpc.StatusCode
    details: str
    cancelled: bool


@dataclass(frozen=True)
class Fixed:
    """What the strategies need from the started service."""

    spec_name: str
    height: int
    width: int
    models: frozenset[str]
    versions: frozenset[str]
    png: bytes


class ErrorLog(logging.Handler):
    """Every record at ERROR or above, from any logger, while the module runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()[:200]}" for r in self.records]
        self.records.clear()
        return found


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[Service]:
    running = start_service(
        tmp_path_factory.mktemp("fuzz-stream"), issuer, max_wait_ms=5.0, max_streams=MAX_STREAMS
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def port(service: Service) -> int:
    """The InferStream port."""
    return service.host.streams.wait_bound()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def server_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def fixed(service: Service) -> Fixed:
    models = service.host.deps.models  # type: ignore[attr-defined]
    spec = models.get(MODEL, None).input_spec
    listed = service.http.get("/v1/models", headers=service.headers()).json()
    rows = listed["models"] if isinstance(listed, dict) else listed
    out = io.BytesIO()
    pixels = np.random.default_rng(SEED).integers(0, 256, (96, 80), dtype=np.uint8)
    Image.fromarray(pixels).save(out, format="PNG")
    return Fixed(
        spec.name,
        spec.height,
        spec.width,
        frozenset(r["name"] for r in rows),
        frozenset(r["version"] for r in rows),
        out.getvalue(),
    )


@pytest.fixture(scope="module")
def openings(service: Service) -> dict[str, list[tuple[str, str]]]:
    """Metadata of each kind of caller: valid, expired, foreign, tampered, of no institution."""
    issuer = service.issuer
    valid = service.token(institution=INSTITUTION)
    head, payload, signature = valid.split(".")
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    stranger = LocalIssuer(issuer.issuer, audience=issuer.audience)
    bearer = {
        "valid": valid,
        "expired": issuer.issue("nurse-1", ["operator"], INSTITUTION, ttl_seconds=-3600),
        "foreign": stranger.issue("nurse-1", ["operator"], INSTITUTION),
        "tampered": f"{head}.{payload}.{flipped}",
        "no-institution": issuer.issue("nurse-1", ["operator"], None),
    }
    return {kind: [("authorization", f"Bearer {token}")] for kind, token in bearer.items()}


# --- strategies ------------------------------------------------------------------------------

_PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def opening_strategy(openings: dict[str, list[tuple[str, str]]]) -> st.SearchStrategy[Opening]:
    """Stream metadata: good and bad tokens, institution headers, random extra headers."""
    valid = openings["valid"]
    refusals = {
        "valid": None,
        "expired": Code.UNAUTHENTICATED,
        "foreign": Code.UNAUTHENTICATED,
        "tampered": Code.UNAUTHENTICATED,
        "no-institution": Code.PERMISSION_DENIED,
    }
    tokens = st.sampled_from(sorted(refusals)).map(
        lambda kind: Opening(kind, tuple(openings[kind]), refusals[kind])
    )
    missing = st.just(Opening("missing", (), Code.UNAUTHENTICATED))
    garbage = _PRINTABLE.map(
        lambda value: Opening("garbage-auth", (("authorization", value),), Code.UNAUTHENTICATED)
    )
    other_scheme = st.sampled_from(["Basic", "Token", "Bearer,", "bearer:"]).map(
        lambda scheme: Opening(
            "other-scheme",
            (("authorization", f"{scheme} {valid[0][1].split(' ', 1)[1]}"),),
            Code.UNAUTHENTICATED,
        )
    )
    own = st.just(Opening("own-institution", (*valid, (INSTITUTION_HEADER, INSTITUTION)), None))
    other = _PRINTABLE.filter(lambda v: v.strip() != INSTITUTION)
    mismatch = other.map(
        lambda v: Opening(
            "other-institution", (*valid, (INSTITUTION_HEADER, v)), Code.PERMISSION_DENIED
        )
    )
    # Sent twice, once right and once wrong: every value the header carries must be the token's.
    twice = st.tuples(other, st.booleans()).map(
        lambda t: Opening(
            "institution-twice",
            (
                *valid,
                *(
                    [(INSTITUTION_HEADER, t[0]), (INSTITUTION_HEADER, INSTITUTION)]
                    if t[1]
                    else [(INSTITUTION_HEADER, INSTITUTION), (INSTITUTION_HEADER, t[0])]
                ),
            ),
            Code.PERMISSION_DENIED,
        )
    )
    hostile = st.one_of(tokens, missing, garbage, other_scheme, mismatch, twice)
    # Mostly accepted, so that most cases reach the frames behind the open.
    accepted = st.sampled_from([Opening("valid", tuple(valid), None)]) | own
    base = st.integers(0, 9).flatmap(lambda n: accepted if n < 7 else hostile)
    extra_key = st.from_regex(r"[a-z][a-z0-9_.-]{0,15}", fullmatch=True).filter(
        lambda k: k not in RESERVED_KEYS and not k.startswith("grpc-") and not k.endswith("-bin")
    )
    extras = st.lists(st.tuples(extra_key, _PRINTABLE.map(str.strip)), max_size=3)
    return st.tuples(base, extras).map(
        lambda t: Opening(t[0].kind, (*t[0].metadata, *t[1]), t[0].refusal)
    )


# Names far past what a status trailer holds, for the details that echo them.
_LONG = st.tuples(st.sampled_from(["m", "\u00e9", "\U0001f600"]), st.integers(2_000, 200_000)).map(
    lambda t: t[0] * t[1]
)


def _request(rid: str, **fields: Any) -> bytes:
    return inference_pb2.InferRequest(request_id=rid, **fields).SerializeToString()


def _pixels(fixed: Fixed, seed_value: int) -> inference_pb2.TensorInputs:
    x = np.random.default_rng(seed_value).random((1, 1, fixed.height, fixed.width), np.float32)
    return inference_pb2.TensorInputs(tensors=[array_to_tensor(fixed.spec_name, x)])


@st.composite
def hostile_tensor(draw: st.DrawFn, fixed: Fixed) -> tuple[inference_pb2.TensorInputs, Expect]:
    """Tensors of wrong dtype, shape, size, name or count; huge, empty and too many dims."""
    dtype = draw(st.one_of(st.sampled_from(DATA_TYPES), st.integers(-3, 100)))
    right = [1, 1, fixed.height, fixed.width]
    shape = draw(
        st.one_of(
            st.just(right),
            st.lists(st.integers(-3, 300), max_size=6),
            # Huge dimensions, with or without a zero that empties the data.
            st.tuples(
                st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4), st.booleans()
            ).map(lambda t: [0, *t[0]] if t[1] else t[0]),
            # More dimensions than numpy holds (ones, so the data stays small; a zero empties it).
            st.tuples(st.integers(30, 80), st.booleans()).map(lambda t: [0] * t[1] + [1] * t[0]),
            st.integers(1, 4).map(lambda n: [n, 1, fixed.height, fixed.width]),
            st.just([0, 1, fixed.height, fixed.width]),
        )
    )
    items = math.prod(shape) if all(d >= 0 for d in shape) else -1
    exact = 0 <= items * ITEMSIZE.get(dtype, 4) <= 1 << 20
    # Mostly the size the shape needs, so that most frames get past the length check.
    if exact and draw(st.integers(0, 3)) > 0:
        size = items * ITEMSIZE.get(dtype, 4)
    else:
        size = draw(st.integers(0, 4096))
    data = np.random.default_rng(draw(st.integers(0, 2**32))).bytes(size)
    name = draw(st.one_of(st.just(fixed.spec_name), st.text(max_size=12), _LONG))
    tensor = inference_pb2.Tensor(name=name, shape=shape, dtype=dtype, data=data)  # type: ignore[arg-type]
    count = draw(st.sampled_from([1, 1, 1, 0, 2]))
    fits = (
        count == 1
        and name == fixed.spec_name
        and dtype == inference_pb2.DATA_TYPE_FLOAT32
        and len(shape) == 4
        and shape[0] >= 1
        and shape[1:] == right[1:]
        and size == items * 4
    )
    expect: Expect = (
        ("answer" if shape[0] == 1 else "any") if fits else frozenset({Code.INVALID_ARGUMENT})
    )
    return inference_pb2.TensorInputs(tensors=[tensor] * count), expect


@st.composite
def frame_strategy(draw: st.DrawFn, fixed: Fixed, index: int) -> Frame:
    """One frame: valid, or hostile in one of several ways."""
    rid = f"r{index}"
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid-image",
                "tensor",
                "tensor",
                "numpy-bounds",
                "image",
                "unknown-model",
                "unknown-version",
                "no-model",
                "no-input",
                "garbage",
                "random",
            ]
        )
    )
    client_error = frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND})
    if kind == "valid":
        tensors = _pixels(fixed, draw(st.integers(0, 2**32)))
        return Frame(kind, _request(rid, model_name=MODEL, tensors=tensors), "answer", rid)
    if kind == "valid-image":
        image = inference_pb2.EncodedImage(data=fixed.png, media_type="image/png")
        return Frame(kind, _request(rid, model_name=MODEL, image=image), "answer", rid)
    if kind == "tensor":
        tensors, expect = draw(hostile_tensor(fixed))
        return Frame(kind, _request(rid, model_name=MODEL, tensors=tensors), expect, rid)
    if kind == "numpy-bounds":
        # Shapes whose data size is right but that numpy cannot hold: too many dimensions, or
        # a zero beside dimensions that multiply past its index range.
        shape = draw(
            st.one_of(
                st.integers(33, 80).map(lambda n: [1] * n),
                st.lists(st.integers(2**31, 2**63 - 1), min_size=1, max_size=3).map(
                    lambda dims: [0, *dims]
                ),
            )
        )
        size = math.prod(shape) * 4
        tensor = inference_pb2.Tensor(name=fixed.spec_name, shape=shape, dtype=1, data=bytes(size))
        tensors = inference_pb2.TensorInputs(tensors=[tensor])
        request = _request(rid, model_name=MODEL, tensors=tensors)
        return Frame(kind, request, frozenset({Code.INVALID_ARGUMENT}), rid)
    if kind == "image":
        media = draw(
            st.one_of(
                st.sampled_from(["image/png", "image/jpeg", "application/dicom", "", "text/plain"]),
                st.text(max_size=20),
            )
        )
        data = draw(
            st.one_of(
                st.binary(max_size=2048),
                st.integers(0, len(fixed.png) - 1).map(lambda n: fixed.png[:n]),
            )
        )
        image = inference_pb2.EncodedImage(
            data=data, media_type=media, frame_index=draw(st.integers(0, 2**32 - 1))
        )
        return Frame(
            kind,
            _request(rid, model_name=MODEL, image=image),
            frozenset({Code.INVALID_ARGUMENT}),
            rid,
        )
    tensors = _pixels(fixed, 0)
    if kind == "unknown-model":
        name = draw(
            st.one_of(st.text(min_size=1, max_size=40), _LONG).filter(
                lambda n: n not in fixed.models
            )
        )
        return Frame(kind, _request(rid, model_name=name, tensors=tensors), client_error, rid)
    if kind == "unknown-version":
        version = draw(
            st.one_of(st.text(min_size=1, max_size=20), _LONG).filter(
                lambda v: v not in fixed.versions
            )
        )
        request = _request(rid, model_name=MODEL, model_version=version, tensors=tensors)
        return Frame(kind, request, client_error, rid)
    if kind == "no-model":
        return Frame(kind, _request(rid, tensors=tensors), frozenset({Code.INVALID_ARGUMENT}))
    if kind == "no-input":
        return Frame(kind, _request(rid, model_name=MODEL), frozenset({Code.INVALID_ARGUMENT}))
    if kind == "garbage":
        data = draw(st.binary(min_size=1, max_size=256))
        try:
            inference_pb2.InferRequest.FromString(data)
        except DecodeError:
            return Frame(kind, data, frozenset({Code.INVALID_ARGUMENT}))
        return Frame("garbage-parsed", data, "any")
    message = draw(message_strategy(inference_pb2.InferRequest, strings=[MODEL, fixed.spec_name]))
    return Frame(kind, message.SerializeToString(), "any")


@st.composite
def frames_strategy(draw: st.DrawFn, fixed: Fixed) -> list[Frame]:
    count = draw(st.integers(0, 5))
    return [draw(frame_strategy(fixed, i)) for i in range(count)]


# How a stream is driven and ended. Lockstep (one frame, then its answer): "half-close" after
# the last frame, or "cancel" at a point (2i: before frame i is sent, 2i + 1: once its answer is
# read). Pipelined (every frame sent at once): "pipeline" half-closes at once and reads every
# answer, "pipeline-cancel" cancels after reading that many answers, frames still in flight.
End = tuple[Literal["half-close", "cancel", "pipeline", "pipeline-cancel"], int]


def end_strategy(frames: int) -> st.SearchStrategy[End]:
    return st.one_of(
        st.just(("half-close", 0)),
        st.integers(0, 2 * frames).map(lambda at: ("cancel", at)),
        st.just(("pipeline", 0)),
        st.integers(0, frames).map(lambda at: ("pipeline-cancel", at)),
    )


# --- driving streams -------------------------------------------------------------------------


class Stream:
    """One InferStream call whose frames, raw bytes, are handed over one at a time.

    The blocking client, as test_infer_stream's: grpc.aio's client in this process would share
    its completion queue with the server's loop, and reports a write that finds the stream
    closed as its own INTERNAL instead of the server's status.
    """

    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        self.outbox: queue.Queue[bytes | None] = queue.Queue()
        method = channel.stream_stream(
            METHOD,
            request_serializer=lambda data: data,
            response_deserializer=inference_pb2.InferResponse.FromString,
        )
        self.call = method(iter(self.outbox.get, None), metadata=metadata, timeout=REQUEST_TIMEOUT)

    def ask(self, frame: Frame) -> inference_pb2.InferResponse:
        """Send one frame and wait for its answer (StopIteration or RpcError: the stream ended)."""
        self.outbox.put(frame.data)
        return next(self.call)  # type: ignore[no-any-return]

    def outcome(self, answers: list[inference_pb2.InferResponse], cancelled: bool) -> Outcome:
        """Wait for the status, and let the request thread go."""
        self.outbox.put(None)
        return Outcome(answers, self.call.code(), self.call.details() or "", cancelled)


def converse(stream: Stream, frames: list[Frame], end: End) -> Outcome:
    """Send frames in lockstep (one, then its answer) and end as `end` says."""
    answers: list[inference_pb2.InferResponse] = []
    if end[0].startswith("pipeline"):
        return pipeline(stream, frames, end)
    try:
        for i, frame in enumerate(frames):
            if end == ("cancel", 2 * i):
                return stream.outcome(answers, stream.call.cancel())
            answers.append(stream.ask(frame))
            if end == ("cancel", 2 * i + 1):
                return stream.outcome(answers, stream.call.cancel())
        if end[0] == "cancel":
            return stream.outcome(answers, stream.call.cancel())
        stream.outbox.put(None)
        answers.extend(stream.call)
    except (StopIteration, grpc.RpcError):
        pass
    return stream.outcome(answers, False)


def pipeline(stream: Stream, frames: list[Frame], end: End) -> Outcome:
    """Send every frame at once, then half-close and read all, or cancel after `end[1]` answers."""
    answers: list[inference_pb2.InferResponse] = []
    for frame in frames:
        stream.outbox.put(frame.data)
    try:
        if end[0] == "pipeline":
            stream.outbox.put(None)
            answers.extend(stream.call)
            return stream.outcome(answers, False)
        while len(answers) < min(end[1], len(frames)):
            answers.append(next(stream.call))
        return stream.outcome(answers, stream.call.cancel())
    except (StopIteration, grpc.RpcError):
        return stream.outcome(answers, False)


def misjudged(opening: Opening, frames: list[Frame], end: End, seen: Outcome) -> str | None:
    """Why this outcome breaks InferStream's rules, or None when it keeps them."""
    code, answers = seen.code, seen.answers
    if code in (Code.UNKNOWN, Code.INTERNAL, Code.DEADLINE_EXCEEDED):
        return f"ended {code.name}: {seen.details[:200]}"
    if seen.cancelled:
        if code != Code.CANCELLED:
            return f"cancelled, yet ended {code.name}"
    elif opening.refusal is not None:
        if answers or code != opening.refusal:
            return (
                f"{opening.kind}: {len(answers)} answers, {code.name}, not {opening.refusal.name}"
            )
        return None
    for frame, answer in zip(frames, answers, strict=False):
        if frame.expect not in ("answer", "any"):
            return f"{frame.kind} frame answered, expected {sorted(c.name for c in frame.expect)}"
        if frame.request_id and answer.request_id != frame.request_id:
            return f"answer {answer.request_id!r} to frame {frame.request_id!r}"
        if frame.expect == "answer" and not answer.outputs:
            return f"{frame.kind} frame answered without outputs"
    if seen.cancelled:
        return None
    if code == Code.OK:
        if len(answers) != len(frames) or end[0] not in ("half-close", "pipeline"):
            return f"OK after {len(answers)} of {len(frames)} frames"
        return None
    if len(answers) >= len(frames):
        return f"{code.name} after every frame was answered"
    ender = frames[len(answers)]
    allowed = DOCUMENTED if ender.expect == "any" else ender.expect
    if ender.expect == "answer" or code not in allowed:
        return f"{ender.kind} frame ended the stream {code.name}: {seen.details[:200]}"
    return None


# --- the state after each example ------------------------------------------------------------


@dataclass
class Reference:
    """A valid frame and the answer the server gave it before the storm."""

    request: inference_pb2.InferRequest
    answer: inference_pb2.InferResponse


@pytest.fixture(scope="module")
def reference(service: Service, fixed: Fixed) -> Reference:
    request = inference_pb2.InferRequest(
        model_name=MODEL, request_id="reference", tensors=_pixels(fixed, 7)
    )
    answer = service.grpc.Infer(request, metadata=service.metadata(), timeout=REQUEST_TIMEOUT)
    return Reference(request, answer)


def _same(a: inference_pb2.InferResponse, b: inference_pb2.InferResponse) -> bool:
    return [(t.name, t.data) for t in a.outputs] == [(t.name, t.data) for t in b.outputs] and [
        x.label for x in a.labels
    ] == [x.label for x in b.labels]


def server_counts(service: Service) -> Counter[str]:
    """InferStream's calls by status, as the server counts them on its metrics endpoint."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(service.http.get("/metrics").text):
        for sample in family.samples:
            if sample.name.endswith("grpc_requests_total") and (
                sample.labels.get("method") == "InferStream"
            ):
                counts[sample.labels["code"]] += int(sample.value)
    return counts


def slots_given_back(service: Service) -> list[str]:
    """Wait until every stream slot is free again."""
    servicer = service.host.streams.servicer  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while servicer.open_streams and time.monotonic() < deadline:
        time.sleep(0.005)
    return [f"{servicer.open_streams} stream slots still held"] if servicer.open_streams else []


def still_serving(service: Service, port: int, reference: Reference, errors: ErrorLog) -> list[str]:
    """No error logged, both ports answering the reference frame as before the storm."""
    problems = [f"server logged {line}" for line in errors.take()]

    frame = Frame("valid", reference.request.SerializeToString(), "answer", "reference")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        seen = converse(Stream(channel, tuple(service.metadata())), [frame], ("half-close", 0))
    if (
        seen.code != Code.OK
        or len(seen.answers) != 1
        or not _same(seen.answers[0], reference.answer)
    ):
        problems.append(f"a valid stream then ended {seen.code.name} {seen.details[:100]}")
    unary = service.grpc.Infer(
        reference.request, metadata=service.metadata(), timeout=REQUEST_TIMEOUT
    )
    if not _same(unary, reference.answer):
        problems.append("the unary port then answered the reference frame differently")
    return problems


def settle(tally: Tally, problems: list[str]) -> None:
    """Tally an example's problems and raise them, so that hypothesis shrinks and prints it."""
    if problems:
        tally.failures.extend(problems)
        raise AssertionError("; ".join(problems))


def _settings(count: int) -> settings:
    return settings(
        max_examples=examples(count),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# --- targets ---------------------------------------------------------------------------------


def test_hostile_streams_end_with_a_documented_status_and_leave_the_server_serving(
    service: Service,
    port: int,
    fixed: Fixed,
    openings: dict[str, list[tuple[str, str]]],
    reference: Reference,
    server_errors: ErrorLog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally = Tally("gRPC InferStream")
    cases = st.tuples(opening_strategy(openings), frames_strategy(fixed)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), end_strategy(len(t[1])))
    )

    @_settings(STREAM_CASES)
    @seed(SEED)
    @given(case=cases)
    def run(case: tuple[Opening, list[Frame], End]) -> None:
        opening, frames, end = case
        tally.cases += 1
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            seen = converse(Stream(channel, opening.metadata), frames, end)
        if (seen.code, seen.details) == CLIENT_REFUSED:
            tally.unsendable += 1
            return
        tally.statuses[seen.code.value[0]] += 1
        wrong = misjudged(opening, frames, end, seen)
        problems = [*([wrong] if wrong else []), *slots_given_back(service)]
        settle(tally, [*problems, *still_serving(service, port, reference, server_errors)])

    run()
    report(tally, capsys)


def test_more_streams_than_the_bound_are_refused_unavailable_and_give_back_every_slot(
    service: Service,
    port: int,
    reference: Reference,
    server_errors: ErrorLog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally = Tally("gRPC InferStream, concurrent")
    valid = Frame("valid", reference.request.SerializeToString(), "answer", "reference")

    def storm(extra: int, ends: list[End]) -> list[str]:
        problems = []
        before = server_counts(service)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            metadata = tuple(service.metadata())
            streams = [Stream(channel, metadata) for _ in range(MAX_STREAMS + extra)]
            # Every stream is open before any first answer is read: exactly the bound is held.
            held, codes = [], []
            for stream in streams:
                try:
                    stream.ask(valid)
                    held.append(stream)
                except (StopIteration, grpc.RpcError):
                    codes.append(stream.outcome([], False).code.name)
            counted = (server_counts(service) - before)["UNAVAILABLE"]
            tally.statuses[Code.UNAVAILABLE.value[0]] += codes.count("UNAVAILABLE")
            if len(held) != MAX_STREAMS or codes != ["UNAVAILABLE"] * extra or counted != extra:
                problems.append(
                    f"{len(held)} of {len(streams)} streams held, the rest {sorted(codes)}, "
                    f"{counted} counted UNAVAILABLE"
                )
            # The held streams go on at once, each cancelled or half-closed at its own point.
            with ThreadPoolExecutor(len(held) or 1) as pool:
                rest = list(
                    pool.map(
                        lambda pair: converse(pair[0], [valid] * (pair[1][1] // 2 + 1), pair[1]),
                        zip(held, ends, strict=False),
                    )
                )
            for seen in rest:
                tally.statuses[seen.code.value[0]] += 1
                if seen.code != (Code.CANCELLED if seen.cancelled else Code.OK):
                    problems.append(f"a held stream ended {seen.code.name} {seen.details[:100]}")
        return problems

    @_settings(CONCURRENT_CASES)
    @seed(SEED)
    @given(
        extra=st.integers(1, 4),
        ends=st.lists(end_strategy(3), min_size=MAX_STREAMS, max_size=MAX_STREAMS),
    )
    def run(extra: int, ends: list[End]) -> None:
        tally.cases += 1
        problems = [*storm(extra, ends), *slots_given_back(service)]
        settle(tally, [*problems, *still_serving(service, port, reference, server_errors)])

    run()
    report(tally, capsys)


def test_a_frame_over_the_message_limit_ends_resource_exhausted_and_the_server_serves_on(
    service: Service, port: int, reference: Reference, server_errors: ErrorLog
) -> None:
    image = inference_pb2.EncodedImage(data=bytes(65 * 1024 * 1024), media_type="image/png")
    oversized = Frame("oversized", _request("big", model_name=MODEL, image=image))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        seen = converse(Stream(channel, tuple(service.metadata())), [oversized], ("half-close", 0))
    assert seen.code == Code.RESOURCE_EXHAUSTED, seen.details
    assert slots_given_back(service) == []
    assert still_serving(service, port, reference, server_errors) == []
