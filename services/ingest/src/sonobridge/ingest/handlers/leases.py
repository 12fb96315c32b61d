"""Write leases renewed while their holder writes, so only a dead or frozen holder loses one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sonobridge.ingest.domain.uploads import APPENDING, LEASE_RENEWALS
from sonobridge.ingest.handlers import IngestDeps

log = logging.getLogger(__name__)


@contextmanager
def _renewed(deps: IngestDeps, what: str, renew: Callable[[], bool]) -> Iterator[None]:
    """Call `renew` LEASE_RENEWALS times per lease until the block ends or it returns False."""
    done = threading.Event()
    interval = deps.upload_lock_lease.total_seconds() / LEASE_RENEWALS

    def run() -> None:
        while not done.wait(interval):
            try:
                if not renew():
                    return  # taken over or let go: the holder's own commit will find out
            except Exception as exc:
                # A database restarting: the lease has renewals to spare; try at the next one.
                log.warning("could not renew %s: %s", what, type(exc).__name__)

    renewer = threading.Thread(target=run, name="write-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        # A renewal still in flight matches nothing once the lease is let go, so never wait long.
        renewer.join(timeout=1.0)


@contextmanager
def leased(deps: IngestDeps, session_id: str, generation: int) -> Iterator[None]:
    """Renew the append lock `generation` holds on the upload until the block ends."""

    def renew() -> bool:
        with deps.unit() as work:
            return work.uploads.release(
                session_id,
                generation,
                status=APPENDING,
                expires_at=deps.clock() + deps.upload_expiry,
            )

    with _renewed(deps, "an upload's append lock", renew):
        yield


class ClaimLease:
    """A write claim on one instance, renewed while its writer streams the object."""

    def __init__(self, deps: IngestDeps, sop_uid: str, claimed_at: datetime) -> None:
        self.deps = deps
        self.sop_uid = sop_uid
        # The claim's time as the index holds it: each renewal moves it, and only the writer
        # holding this time may store or release the claim.
        self.claimed_at = claimed_at

    def renew(self) -> bool:
        """Move the claim's time to now; False once another writer holds the claim."""
        at = self.deps.clock()
        with self.deps.unit() as work:
            kept = work.instances.renew_claim(self.sop_uid, self.claimed_at, at)
        if kept:
            self.claimed_at = at
        return kept

    @contextmanager
    def renewed(self) -> Iterator[None]:
        """Renew the claim until the block ends."""
        with _renewed(self.deps, "an instance's write claim", self.renew):
            yield
