"""DICOM C-STORE and C-ECHO SCP (pynetdicom) for devices and PACS that push DIMSE."""

from __future__ import annotations

import logging
import re
import socket
import threading
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import A_ASSOCIATE, P_DATA
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import _STORAGE_CLASSES, Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket, ThreadedAssociationServer

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, Problem
from sonobridge.common.sockets import readable
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.domain.model import Channel, Scope, is_valid_uid
from sonobridge.ingest.domain.validation import (
    ENCAPSULATED_TRANSFER_SYNTAXES,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from sonobridge.ingest.handlers import IngestDeps, callers, instances
from sonobridge.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_CONFLICT = 0xC001
NOT_AUTHORIZED = 0xC002
PROCESSING_FAILURE = 0x0110

# The role a registered calling AE acts with: a device writer of its own institution, exactly
# like the institution's operators on the app path, so the same access rule decides.
CALLER_ROLE = "operator"
C_STORE_RQ = 0x0001
NO_DATASET = 0x0101
# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4.
REJECT_UNKNOWN_CALLER = (0x01, 0x01, 0x03)
REJECT_TRANSIENT = (0x02, 0x01, 0x01)

# The SCP's order of preference when one presentation context offers several syntaxes
# (pynetdicom accepts the first of these the requestor offers). A compressed syntax first: an
# SCU offers one only for data already so encoded, which then travels and is stored unchanged
# instead of being decompressed (or recompressed) on the way. Then explicit VR, whose VRs
# survive, before implicit VR; big endian (retired) last.
PREFERRED_TRANSFER_SYNTAXES = [
    *sorted(ENCAPSULATED_TRANSFER_SYNTAXES, key=lambda uid: [int(n) for n in uid.split(".")]),
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
]
# Every storage SOP class of the standard that pynetdicom knows (PS3.4 B.5), not only the 120
# of StoragePresentationContexts, which an SCU's 128-context limit cut short.
STORAGE_SOP_CLASSES = sorted(set(_STORAGE_CLASSES.values()))

# Receive datasets straight to a temp file in DICOM file format instead of decoding them in
# memory: instances can be hundreds of MB. This is a pynetdicom process-wide switch.
_config.STORE_RECV_CHUNKED_DATASET = True


# A UID quoted in a problem's detail; the peer knows which instance it sent.
_QUOTED_UID = re.compile(r"'?\b[0-9]+(?:\.[0-9]+){2,}\b'? ?")


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if len(comment) > 64:
        # ErrorComment is LO, 64 characters at most: keep the words, drop the UIDs.
        comment = _QUOTED_UID.sub("", comment)
    if comment:
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


class PolledSocket(AssociationSocket):
    """pynetdicom's association socket, asking poll() rather than select() for data."""

    # select() refuses descriptors numbered 1024 or more, and pynetdicom reads that refusal as
    # a closed connection: a service holding that many files aborted every association. The
    # class adds no state, so the socket pynetdicom built is switched to it before it reads.
    @property
    def ready(self) -> bool:
        """Return True if the peer has sent data (or closed) and a read will not block."""
        if self.socket is None or self._is_connected is False:
            return False
        try:
            return readable(self.socket.fileno())
        except OSError:
            # Evt17: transport connection closed, as pynetdicom's own ready() reports it.
            self.event_queue.put("Evt17")
            return False


class GuardedDimse(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, answering C-STORE requests without valid UIDs.

    pynetdicom opens the request's temp file and then reads the command's Affected SOP
    Instance UID; when that is missing its reader thread dies, the temp file stays and the
    peer never gets a status. Here such a request is answered 0xC000 once its data set has
    been read (and dropped), and any other undecodable message aborts the association.
    """

    def __init__(self, assoc: Any) -> None:
        super().__init__(assoc)
        # (presentation context id, response) of a refused request whose data set is arriving.
        self._refused: tuple[int, C_STORE] | None = None

    def receive_primitive(self, primitive: P_DATA) -> None:
        """Feed the message assembler one PDV at a time, refusing bad C-STORE commands."""
        for context_id, data in primitive.presentation_data_value_list:
            single = P_DATA()
            # pynetdicom checks for a list [id, pdv] at run time, though typed as a tuple.
            single.presentation_data_value_list = [cast(Any, [context_id, data])]
            self._receive(single, context_id, data)

    def _receive(self, single: P_DATA, context_id: int, data: bytes) -> None:
        header = data[0] if data else 0
        is_command, is_last = bool(header & 1), bool(header & 2)
        if self._refused is not None:
            if not is_command:
                if is_last:
                    cx, response = self._refused
                    self._refused = None
                    self.send_msg(response, cx)
                return
            # A new command before the refused data set ended: the peer broke the protocol.
            self._refused = None
        if is_command and is_last and self._refuse(context_id, data):
            return
        try:
            super().receive_primitive(single)
        except Exception:
            log.warning("undecodable DIMSE message; aborting the association", exc_info=True)
            self._drop_message()
            self.dul.event_queue.put("Evt19")

    def _refuse(self, context_id: int, data: bytes) -> bool:
        """Refuse a C-STORE-RQ whose command carries no valid SOP class or instance UID."""
        earlier = self.message.encoded_command_set.getvalue() if self.message else b""
        try:
            command = decode(BytesIO(earlier + data[1:]), True, True)
            field, message_id = int(command.CommandField), int(command.MessageID)
        except Exception:
            # Not a command we can read: pynetdicom's own path rejects it.
            return False
        if field != C_STORE_RQ:
            return False
        sop_class = str(command.get("AffectedSOPClassUID", "") or "").strip()
        sop = str(command.get("AffectedSOPInstanceUID", "") or "").strip()
        if is_valid_uid(sop_class) and is_valid_uid(sop):
            return False
        response = C_STORE()
        response.MessageIDBeingRespondedTo = message_id
        if is_valid_uid(sop_class):
            response.AffectedSOPClassUID = sop_class  # type: ignore[assignment]
        response.Status = CANNOT_UNDERSTAND
        response.ErrorComment = "C-STORE request without a valid SOP Class/Instance UID"  # type: ignore[assignment]
        log.info("C-STORE without a valid SOP Class/Instance UID refused")
        self._drop_message()
        if int(command.get("CommandDataSetType", NO_DATASET)) == NO_DATASET:
            self.send_msg(response, context_id)
        else:
            self._refused = (context_id, response)
        return True

    def drop_partial(self) -> None:
        """Remove the temp file of a message the peer stopped sending (called on close)."""
        if self.message is not None:
            log.info("connection closed in the middle of a DIMSE message; its data dropped")
        self._drop_message()
        self._refused = None

    def _drop_message(self) -> None:
        message, self.message = self.message, None
        handle = getattr(message, "_data_set_file", None)
        if handle is not None:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)


def _drop_unassociated(assoc: Any) -> None:
    # A request already in and awaiting this SCP's answer (state Sta3, PS3.8 9.2) is spared: what
    # remains is this SCP's own work, which a loaded machine may take seconds over.
    if assoc.is_established or assoc.dul.state_machine.current_state == "Sta3":
        return
    raw = assoc.dul.socket.socket if assoc.dul.socket else None
    if raw is None:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        # Already closed: the association ended by itself.
        return
    log.info("connection without an association after the ARTIM timeout dropped")


class StoreScp:
    """A Storage and Verification SCP under the configured AE title."""

    def __init__(self, deps: IngestDeps, settings: IngestSettings) -> None:
        self.deps = deps
        self.settings = settings
        self.port: int | None = None
        self.ready = threading.Event()
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.require_called_aet = True
        self.ae.maximum_associations = settings.dimse_max_associations
        self.ae.acse_timeout = settings.dimse_artim_timeout_seconds
        self.ae.network_timeout = settings.dimse_network_timeout_seconds
        self.ae.dimse_timeout = settings.dimse_dimse_timeout_seconds
        contexts = [build_context(Verification)]
        contexts += [
            build_context(sop_class, PREFERRED_TRANSFER_SYNTAXES)
            for sop_class in STORAGE_SOP_CLASSES
        ]
        self.ae.supported_contexts = contexts
        self.ae.maximum_pdu_size = 0

    @property
    def _network_timeout(self) -> float:
        return self.settings.dimse_network_timeout_seconds

    def _principal(self, caller: DimseCaller) -> tuple[Principal, Scope]:
        known = self.deps.access.registry.get(caller.institution_id)
        consortium = known.consortium if known else self.settings.consortium_id
        # A device stores for its own institution only, like the operator who holds it: the
        # access policy then refuses a C-STORE into a study of another institution.
        principal = Principal(
            user=f"ae:{caller.ae_title}",
            roles=frozenset({CALLER_ROLE}),
            institution=caller.institution_id,
            consortium=consortium,
        )
        return principal, Scope(caller.institution_id, consortium)

    def handle_open(self, event: Any) -> None:
        """Bound the new connection's reads and guard its DIMSE assembler before it reads."""
        # Accepted sockets do not inherit the listener's timeout: without one a half-sent PDU
        # blocks its reader (and holds an association slot) until the peer closes. Until the
        # association is accepted no read may outlast the ARTIM timeout.
        artim = self.settings.dimse_artim_timeout_seconds
        event.assoc.dul.socket.socket.settimeout(min(artim, self._network_timeout))
        event.assoc.dimse = GuardedDimse(event.assoc)
        event.assoc.dul.socket.__class__ = PolledSocket
        # A peer trickling its request a byte at a time never lets a read time out; once the
        # ARTIM time has passed without an association, cut the connection under the reader.
        watchdog = threading.Timer(artim + 0.25, _drop_unassociated, args=(event.assoc,))
        watchdog.daemon = True
        watchdog.start()

    def handle_close(self, event: Any) -> None:
        """Leave no temp file of a C-STORE cut off by the connection's end."""
        dimse = event.assoc.dimse
        if isinstance(dimse, GuardedDimse):
            dimse.drop_partial()

    def handle_accepted(self, event: Any) -> None:
        """Give an accepted association the network timeout for its reads."""
        connection = event.assoc.dul.socket.socket
        if connection is None:
            return
        try:
            connection.settimeout(self._network_timeout)
        except OSError:
            # The peer aborted as it was accepted and the socket is closed: nothing to bound.
            log.info("association closed as it was accepted")

    def handle_requested(self, event: Any) -> None:
        """Reject an association whose calling AE title is not registered."""
        request = event.assoc.requestor.primitive
        if not isinstance(request, A_ASSOCIATE):
            return
        calling = str(request.calling_ae_title)
        try:
            caller = callers.resolve_caller(self.deps, calling)
        except Exception:
            log.exception("cannot read the DIMSE caller registry; rejecting the association")
            self._reject(event.assoc, REJECT_TRANSIENT)
            return
        if caller is None:
            log.info("association from unregistered calling AE %r rejected", calling.strip())
            self._reject(event.assoc, REJECT_UNKNOWN_CALLER)

    @staticmethod
    def _reject(assoc: Any, reason: tuple[int, int, int]) -> None:
        assoc.acse.send_reject(*reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def handle_store(self, event: Any) -> Dataset:
        """Store one received dataset; answer a DICOM status naming any problem."""
        calling = str(event.assoc.requestor.ae_title).strip()
        path = Path(event.dataset_path)
        try:
            # Registrations can be removed while an association is open: ask again.
            caller = callers.resolve_caller(self.deps, calling)
            if caller is None:
                return _status(NOT_AUTHORIZED, "calling AE title is not registered")
            if str(event.request.AffectedSOPClassUID) != str(event.context.abstract_syntax):
                return _status(DATASET_MISMATCH, "SOP class differs from the presentation context")
            principal, scope = self._principal(caller)
            spooled = self.deps.spool.adopt(path)
            instances.store_instance(
                self.deps, principal, spooled, channel=Channel.CSTORE, scope=scope
            )
        except Problem as problem:
            log.info("C-STORE from %s refused: %s", calling, problem.detail)
            return _status(status_for(problem), problem.detail)
        except Exception:
            log.exception("C-STORE from %s failed", calling)
            return _status(PROCESSING_FAILURE, "internal error while storing")
        finally:
            # pynetdicom removes the file only when the handler returns; never leave it.
            path.unlink(missing_ok=True)
        return _status(SUCCESS)

    def handle_echo(self, _event: Any) -> int:
        """Answer C-ECHO."""
        return SUCCESS

    def run(self, stop: threading.Event, listening: socket.socket | None = None) -> None:
        """Serve associations until `stop` is set, on `listening` if given (already bound)."""
        handlers = [
            (evt.EVT_CONN_OPEN, self.handle_open),
            (evt.EVT_REQUESTED, self.handle_requested),
            (evt.EVT_ACCEPTED, self.handle_accepted),
            (evt.EVT_CONN_CLOSE, self.handle_close),
            (evt.EVT_C_STORE, self.handle_store),
            (evt.EVT_C_ECHO, self.handle_echo),
        ]
        address = (self.settings.dimse_host, self.settings.dimse_port)
        if listening is None:
            server = self.ae.start_server(address, block=False, evt_handlers=handlers)
        else:
            server = self._serve_on(listening, address, handlers)
        # start_server returns the server whenever block=False; None only when it blocked.
        assert server is not None
        self.port = int(server.server_address[1])
        self.ready.set()
        log.info("DICOM SCP %s listening on port %d", self.settings.ae_title, self.port)
        try:
            stop.wait()
        finally:
            server.shutdown()
            self.ready.clear()

    def _serve_on(
        self, listening: socket.socket, address: tuple[str, int], handlers: list[Any]
    ) -> ThreadedAssociationServer:
        """Start pynetdicom's threaded server on a socket bound before pynetdicom was loaded."""
        server = self.ae.make_server(
            address,
            evt_handlers=handlers,
            server_class=_AdoptingServer,
            listening=listening,
        )
        # As start_server does: the AE's shutdown and the server's own expect it listed.
        self.ae._servers.append(server)
        threading.Thread(target=server.serve_forever, name="dimse-acceptor", daemon=True).start()
        return server


class _AdoptingServer(ThreadedAssociationServer):
    """pynetdicom's server on a socket that is already bound and listening."""

    def __init__(self, *args: Any, listening: socket.socket, **kwargs: Any) -> None:
        self._listening = listening
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        """Take the bound socket in place of the one socketserver just made."""
        self.socket.close()
        self.socket = self._listening
        if self.ae.network_timeout is not None:
            self.socket.settimeout(self.ae.network_timeout)
        self.server_address = self.socket.getsockname()
