"""Streaming multipart/related reader: each part goes to the spool, never wholly into memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.ports import Spool, SpooledFile

_MAX_HEADER_BYTES = 16 * 1024


class MalformedMultipart(InvalidInput):
    """The body is not a well-formed multipart message."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail, reason="malformed_multipart")


@dataclass
class Part:
    """One body part: its headers (lower-cased names) and its spooled bytes."""

    headers: dict[str, str]
    body: SpooledFile

    @property
    def content_type(self) -> str:
        """The part's media type without parameters, lower-cased."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MalformedMultipart(f"part header line {line[:80]!r} has no colon")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers


async def read_parts(
    chunks: AsyncIterator[bytes], boundary: str, spool: Spool
) -> AsyncIterator[Part]:
    """Yield each part of a multipart body once its last byte has been spooled."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    # A leading CRLF lets the first delimiter be found like every later one.
    buffer = b"\r\n"
    state = "preamble"
    headers: dict[str, str] = {}
    current: SpooledFile | None = None
    finished = False
    stream = chunks.__aiter__()
    exhausted = False
    try:
        while not finished:
            progressed = True
            while progressed and not finished:
                progressed = False
                if state == "preamble":
                    index = buffer.find(delimiter)
                    if index >= 0:
                        buffer = buffer[index + len(delimiter) :]
                        state = "after_delimiter"
                        progressed = True
                    else:
                        buffer = buffer[-len(delimiter) :]
                elif state == "after_delimiter":
                    if len(buffer) >= 2:
                        if buffer.startswith(b"--"):
                            finished = True
                            break
                        line_end = buffer.find(b"\r\n")
                        if line_end < 0:
                            if len(buffer) > 1024:
                                raise MalformedMultipart("delimiter line is not terminated")
                        else:
                            if buffer[:line_end].strip(b" \t"):
                                raise MalformedMultipart("unexpected bytes after a delimiter")
                            buffer = buffer[line_end + 2 :]
                            state = "headers"
                            progressed = True
                elif state == "headers":
                    end = buffer.find(b"\r\n\r\n")
                    if buffer.startswith(b"\r\n"):
                        end, skip = 0, 2
                    else:
                        skip = 4
                    if end >= 0:
                        headers = _parse_headers(buffer[:end])
                        buffer = buffer[end + skip :]
                        current = spool.new()
                        state = "body"
                        progressed = True
                    elif len(buffer) > _MAX_HEADER_BYTES:
                        raise MalformedMultipart("part headers are too long")
                elif state == "body":
                    assert current is not None
                    index = buffer.find(delimiter)
                    if index >= 0:
                        # Views, not slices: the body's bytes are copied into the file only.
                        current.write(memoryview(buffer)[:index])
                        current.close()
                        part = Part(headers, current)
                        current = None
                        buffer = buffer[index + len(delimiter) :]
                        state = "after_delimiter"
                        yield part
                        progressed = True
                    else:
                        keep = len(delimiter) - 1
                        if len(buffer) > keep:
                            current.write(memoryview(buffer)[:-keep])
                            buffer = buffer[-keep:]
            if finished:
                break
            if exhausted:
                raise MalformedMultipart("body ended before the closing delimiter")
            try:
                buffer += await stream.__anext__()
            except StopAsyncIteration:
                exhausted = True
    finally:
        if current is not None:
            current.discard()
