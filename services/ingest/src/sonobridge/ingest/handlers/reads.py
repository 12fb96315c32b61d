"""Reads (QIDO-RS, WADO-RS, gRPC): find visible instances, open their bytes, frames, pixels."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from sonobridge.common.access import Action
from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.query import Criterion
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.exams import get_exam


def find_instances(
    deps: IngestDeps,
    principal: Principal,
    criteria: Sequence[Criterion],
    *,
    action: str,
    resource_id: str,
) -> list[Instance]:
    """Return visible stored instances matching every criterion, auditing the read."""
    deps.access.require_any(principal, Action.READ)
    reach = deps.access.reachable(principal, Action.READ)
    with deps.unit() as work:
        found = work.instances.search(reach, criteria)
        work.audit.append(
            audit_record(
                at=deps.clock(),
                actor=principal,
                action=action,
                resource_type="study",
                resource_id=resource_id,
                institution_id=principal.institution,
                channel="dicomweb",
                outcome=f"ok:{len(found)}",
            )
        )
    return found


def open_instance(deps: IngestDeps, instance: Instance) -> AbstractContextManager[Iterator[bytes]]:
    """Stream a stored instance's bytes exactly as received."""
    return deps.store.open(instance.object_key)


def list_exam_instances(
    deps: IngestDeps, principal: Principal, exam_id: str, offset: int, limit: int
) -> tuple[list[Instance], bool]:
    """Return one page of an exam's stored instances and whether more follow."""
    view = get_exam(deps, principal, exam_id, channel="grpc")
    page = view.instances[offset : offset + limit]
    return page, offset + limit < len(view.instances)


def _spool_object(deps: IngestDeps, instance: Instance) -> Path:
    fd, name = tempfile.mkstemp(dir=deps.spool.directory, suffix=".render.dcm")
    with open(fd, "wb") as out, open_instance(deps, instance) as chunks:
        for chunk in chunks:
            out.write(chunk)
    return Path(name)


def prepare_frames(deps: IngestDeps, instance: Instance, numbers: Sequence[int]) -> Path:
    """Spool the instance and check the frames exist, so errors come before streaming starts."""
    path = _spool_object(deps, instance)
    try:
        deps.codec.check_frames(path, numbers)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def prepare_pixels(deps: IngestDeps, instance: Instance) -> tuple[Path, int]:
    """Spool the instance and count its frames, so errors come before streaming starts."""
    path = _spool_object(deps, instance)
    try:
        frames = deps.codec.check_frames(path, [])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, frames


def read_frames(deps: IngestDeps, path: Path, numbers: Sequence[int]) -> Iterator[bytes]:
    """Yield the bytes of each numbered frame of a spooled instance."""
    return deps.codec.read_frames(path, numbers)


def render(deps: IngestDeps, instance: Instance, frame: int, media_type: str) -> bytes:
    """Render one frame of an instance as JPEG or PNG."""
    path = _spool_object(deps, instance)
    try:
        return deps.codec.render_frame(path, frame, media_type)
    finally:
        path.unlink(missing_ok=True)


def open_bulk(
    deps: IngestDeps, instance: Instance, key: BulkKey
) -> tuple[int, Iterator[bytes], Callable[[], None]]:
    """Open the stored object at the element; errors come before the response starts."""
    stack = ExitStack()
    try:
        chunks = stack.enter_context(open_instance(deps, instance))
        length, body = deps.codec.open_element(chunks, key, instance.transfer_syntax_uid)
    except BaseException:
        stack.close()
        raise
    return length, body, stack.close
