"""JSON logging to stderr, one object per line, so log shippers need no parsing rules.

Warnings and uncaught thread errors from libraries join the same stream, and every line passes
through a redaction filter: pydicom and database drivers echo the values they choke on, and those
values are patient names, IDs and birth dates.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

# Attributes every LogRecord has; anything else came from `extra=` and belongs in the output.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

# Python reprs of str/bytes values ('...', "...", b'...'), as pydicom's "Invalid value for VR
# PN: '...'" and SQLAlchemy's "[parameters: (...)]" print them. Two characters or fewer stay
# (VR names such as 'UN' carry no identity).
_QUOTED = re.compile(r"""[bB]?'(?:[^'\\\n]|\\.){3,}'|[bB]?"(?:[^"\\\n]|\\.){3,}\"""")
# A value after a patient attribute's keyword, name or tag: "PatientName: DOE^JOHN",
# "(0010,0010) Patient's Name PN: DOE^JOHN", "PatientID=123".
_PATIENT_ATTRIBUTE = re.compile(
    r"(?P<key>(?:Patient(?:'s)?\s?(?:Name|ID|Birth\s?Date|Birth\s?Time|Address|"
    r"Telephone\s?Numbers|Mother'?s?\s?Birth\s?Name)|Other\s?Patient\s?(?:IDs|Names)|"
    r"Issuer\s?of\s?Patient\s?ID|\(0010,[0-9A-Fa-f]{4}\)(?:\s+[A-Za-z' ]+?)?)"
    r"(?:\s+[A-Z]{2})?\s*[:=]\s*)(?P<value>[^,;\n)\]]+)"
)
# Runs longer than any DICOM short-text value (64) are what a wrong length byte makes pydicom
# read: the value swallows the elements after it. Runs of UID, path and URL characters stay.
_OVERLONG = re.compile(r"[^\s'\"]{65,}")
_PLAIN = re.compile(r"[0-9A-Za-z._\-/:=+,?&%#]+")
# Loggers whose quoted text is protocol, not data ("HTTP/1.1 200 OK").
_PROTOCOL_LOGGERS = ("httpx", "httpcore", "uvicorn")


_SOURCE_PATH = re.compile(r"""['"]/[\w./\-]+\.pyi?['"]""")


def _quoted(match: re.Match[str]) -> str:
    # Traceback lines quote source files: File "/.../pydicom/filereader.py"; those stay.
    if _SOURCE_PATH.fullmatch(match.group(0)):
        return match.group(0)
    return f"'<redacted {len(match.group(0))} chars>'"


def _overlong(match: re.Match[str]) -> str:
    if _PLAIN.fullmatch(match.group(0)):
        return match.group(0)
    return f"<redacted {len(match.group(0))} chars>"


def redact(text: str, *, quoted: bool = True) -> str:
    """Replace patient-identifying values and over-long echoed DICOM values in `text`."""
    text = _PATIENT_ATTRIBUTE.sub(lambda m: f"{m.group('key')}<redacted>", text)
    if quoted:
        text = _QUOTED.sub(_quoted, text)
    return _OVERLONG.sub(_overlong, text)


class RedactingFilter(logging.Filter):
    """Rewrite each record's message, exception text and string extras through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line, nor its arguments' PHI
            message = f"unformattable log message from {record.name}"
        quoted = not record.name.startswith(_PROTOCOL_LOGGERS)
        record.msg, record.args = redact(message, quoted=quoted), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in vars(record).items():
            # `stack` (stack_summary) holds file names and source lines only, never values.
            if key not in _STANDARD_ATTRS and key != "stack" and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """Format records as JSON objects with the service name and any `extra` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, default=str, ensure_ascii=False)


def stack_summary(exc: BaseException) -> str:
    """Return where an exception was raised (file, line, code) without its message or locals."""
    lines = [
        f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
        for f in traceback.extract_tb(exc.__traceback__)
    ]
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        lines.append(f"caused by {type(cause).__module__}.{type(cause).__qualname__}")
    return "\n".join(lines[-20:])


def _log_uncaught_thread(args: threading.ExceptHookArgs) -> None:
    # The default hook prints a raw traceback (with the exception's message) to stderr.
    if args.exc_type is SystemExit:
        return
    logging.getLogger("sonobridge.uncaught").error(
        "thread %s died with %s.%s",
        args.thread.name if args.thread else "?",
        args.exc_type.__module__,
        args.exc_type.__qualname__,
        extra={"stack": stack_summary(args.exc_value) if args.exc_value else ""},
    )


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("sonobridge.uncaught").critical(
        "process died with %s.%s",
        exc_type.__module__,
        exc_type.__qualname__,
        extra={"stack": stack_summary(exc.with_traceback(tb))},
    )


def configure_logging(service: str, level: str = "INFO", json_format: bool = True) -> None:
    """Route the root logger, warnings and uncaught errors to stderr in JSON (or plain text)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # warnings.warn (pydicom warns and logs each problem) goes to the "py.warnings" logger, so
    # through the filter above, instead of a raw line on stderr.
    logging.captureWarnings(True)
    threading.excepthook = _log_uncaught_thread
    sys.excepthook = _log_uncaught
    # kafka-python logs every reconnect attempt at INFO; keep it for real problems only.
    logging.getLogger("kafka").setLevel(logging.WARNING)
