"""The append lock's lease: renewed while its holder writes, so only a dead holder loses it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sonobridge.ingest.domain.uploads import APPENDING, LEASE_RENEWALS
from sonobridge.ingest.handlers import IngestDeps

log = logging.getLogger(__name__)


@contextmanager
def leased(deps: IngestDeps, session_id: str, generation: int) -> Iterator[None]:
    """Renew the append lock `generation` holds on the upload until the block ends."""
    done = threading.Event()
    interval = deps.upload_lock_lease.total_seconds() / LEASE_RENEWALS

    def renew() -> None:
        while not done.wait(interval):
            try:
                with deps.unit() as work:
                    kept = work.uploads.release(
                        session_id,
                        generation,
                        status=APPENDING,
                        expires_at=deps.clock() + deps.upload_expiry,
                    )
            except Exception as exc:
                # A database restarting: the lease has renewals to spare; try at the next one.
                log.warning("could not renew an upload's append lock: %s", type(exc).__name__)
                continue
            if not kept:
                return  # taken over or let go: the holder's own commit will find out

    renewer = threading.Thread(target=renew, name="upload-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        # A renewal still in flight matches nothing once the lock is let go, so never wait long.
        renewer.join(timeout=1.0)
