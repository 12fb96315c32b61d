"""DICOM C-STORE and C-ECHO SCP (pynetdicom) for devices and PACS that push DIMSE."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import StoragePresentationContexts, build_context
from pynetdicom.sop_class import Verification

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, Problem
from sonobridge.ingest import handlers
from sonobridge.ingest.domain.model import Channel, Scope
from sonobridge.ingest.domain.validation import SUPPORTED_TRANSFER_SYNTAXES
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_CONFLICT = 0xC001
NOT_AUTHORIZED = 0xC002
PROCESSING_FAILURE = 0x0110

# Receive datasets straight to a temp file in DICOM file format instead of decoding them in
# memory: instances can be hundreds of MB. This is a pynetdicom process-wide switch.
_config.STORE_RECV_CHUNKED_DATASET = True


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        # ErrorComment is LO: 64 characters at most.
        status.ErrorComment = comment[:64]
    return status


def status_for(problem: Problem) -> int:
    """Map a domain error to a C-STORE failure status."""
    reason = str(problem.extensions.get("reason", ""))
    if reason == "oversize":
        return OUT_OF_RESOURCES
    if reason == "uid_mismatch":
        return DATASET_MISMATCH
    if isinstance(problem, Conflict):
        return DUPLICATE_CONFLICT
    if isinstance(problem, Forbidden):
        return NOT_AUTHORIZED
    if problem.status >= 500:
        return PROCESSING_FAILURE
    return CANNOT_UNDERSTAND


class StoreScp:
    """A Storage and Verification SCP under the configured AE title."""

    def __init__(self, deps: IngestDeps, settings: IngestSettings) -> None:
        self.deps = deps
        self.settings = settings
        self.port: int | None = None
        self.ready = threading.Event()
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.require_called_aet = True
        if settings.accepted_calling_ae_titles:
            self.ae.require_calling_aet = list(settings.accepted_calling_ae_titles)
        syntaxes = sorted(SUPPORTED_TRANSFER_SYNTAXES)
        contexts = [build_context(Verification)]
        contexts += [
            build_context(cx.abstract_syntax, syntaxes) for cx in StoragePresentationContexts
        ]
        self.ae.supported_contexts = contexts
        self.ae.maximum_pdu_size = 0

    def _principal(self, calling: str) -> tuple[Principal, Scope]:
        institution = self.settings.calling_ae_institutions.get(calling, f"ae:{calling}")
        known = self.deps.access.registry.get(institution)
        consortium = known.consortium if known else self.settings.consortium_id
        # A device stores for its own institution only, like the operator who holds it: the
        # access policy then refuses a C-STORE into a study of another institution.
        principal = Principal(
            user=f"ae:{calling}",
            roles=frozenset({"operator"}),
            institution=institution,
            consortium=consortium,
        )
        return principal, Scope(institution, consortium)

    def handle_store(self, event: Any) -> Dataset:
        """Store one received dataset; answer a DICOM status naming any problem."""
        calling = str(event.assoc.requestor.ae_title).strip()
        principal, scope = self._principal(calling)
        path = Path(event.dataset_path)
        try:
            spooled = self.deps.spool.adopt(path)
            handlers.store_instance(
                self.deps, principal, spooled, channel=Channel.CSTORE, scope=scope
            )
        except Problem as problem:
            log.info("C-STORE from %s refused: %s", calling, problem.detail)
            return _status(status_for(problem), problem.detail)
        except Exception:
            log.exception("C-STORE from %s failed", calling)
            return _status(PROCESSING_FAILURE, "internal error while storing")
        return _status(SUCCESS)

    def handle_echo(self, _event: Any) -> int:
        """Answer C-ECHO."""
        return SUCCESS

    def run(self, stop: threading.Event) -> None:
        """Serve associations until `stop` is set."""
        server = self.ae.start_server(
            (self.settings.dimse_host, self.settings.dimse_port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self.handle_store), (evt.EVT_C_ECHO, self.handle_echo)],
        )
        self.port = int(server.server_address[1])
        self.ready.set()
        log.info("DICOM SCP %s listening on port %d", self.settings.ae_title, self.port)
        try:
            stop.wait()
        finally:
            server.shutdown()
            self.ready.clear()
