"""The DICOM port, bound at start-up; the DIMSE stack (pynetdicom) loads on the first connection."""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from sonobridge.common.sockets import readable
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from sonobridge.ingest.entrypoints.dimse import StoreScp

log = logging.getLogger(__name__)

# How often an idle listener looks at its stop event.
_STOP_POLL_S = 0.5


class DimseListener:
    """Listens on the SCP's port at once; builds the SCP when a peer first connects.

    pynetdicom, pydicom and the SCP's ~170 presentation contexts cost ~7 MB (~35 MB where
    nothing else loads pydicom) and a few tenths of a CPU second. A peer that connects while
    they load waits in the kernel's accept queue, well inside any association timeout.
    """

    def __init__(self, deps: IngestDeps, settings: IngestSettings) -> None:
        self.deps = deps
        self.settings = settings
        self.port: int | None = None
        self.ready = threading.Event()
        self.scp: StoreScp | None = None

    def run(self, stop: threading.Event) -> None:
        """Bind the port, wait for the first connection, then serve associations until `stop`."""
        host = self.settings.dimse_host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server((host, self.settings.dimse_port), family=family)
        self.port = int(listening.getsockname()[1])
        self.ready.set()
        log.info("DICOM port %d open; the SCP starts on the first connection", self.port)
        handed = False
        try:
            while not stop.is_set():
                if readable(listening.fileno(), _STOP_POLL_S):
                    break
            else:
                return
            from sonobridge.ingest.entrypoints.dimse import StoreScp

            self.scp = StoreScp(self.deps, self.settings)
            # The SCP owns the socket from here and closes it when it stops.
            handed = True
            self.scp.run(stop, listening)
        finally:
            if not handed:
                listening.close()
            self.ready.clear()
