"""Run the single node's login provider on its own port, beside the four services."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from sonobridge.common.auth import LocalIssuer, TokenVerifier
from sonobridge.common.cors import install_cors
from sonobridge.common.infrastructure import LOCAL_ISSUER
from sonobridge.node.identity.accounts import LoginThrottle, PeopleDirectory, hash_password
from sonobridge.node.identity.provider import (
    AUDIENCE,
    PUBLIC_CLIENTS,
    Client,
    OpenIDProvider,
    loopback_redirects,
)
from sonobridge.node.identity.web import build_app

DEFAULT_PORT = 8090
MACHINE_CLIENTS_FILE = "oidc-clients.json"


class RedirectPolicy:
    """Where public clients may be sent back: loopback on any port, plus configured origins."""

    def __init__(self, origins: Iterable[str] = ()) -> None:
        self.origins = frozenset(o.rstrip("/") for o in origins)

    def __call__(self, uri: str) -> bool:
        parts = urlsplit(uri)
        if parts.fragment:
            return False
        return loopback_redirects(uri) or f"{parts.scheme}://{parts.netloc}" in self.origins


def machine_clients(data_dir: Path) -> dict[str, Client]:
    """Read the machine clients (client credentials) registered with `sonobridge clients add`."""
    path = data_dir / MACHINE_CLIENTS_FILE
    if not path.exists():
        return {}
    raw: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return {
        client_id: Client(
            client_id,
            secret_hash=entry["secret_hash"],
            roles=tuple(entry.get("roles", ["service"])),
            institution=entry.get("institution"),
        )
        for client_id, entry in raw.items()
    }


def add_machine_client(
    data_dir: Path, client_id: str, secret: str, roles: Iterable[str], institution: str | None
) -> None:
    """Register (or replace) a machine client; only the argon2 hash of its secret is kept."""
    if client_id in PUBLIC_CLIENTS:
        raise ValueError(f"{client_id} is a public client for people")
    path = data_dir / MACHINE_CLIENTS_FILE
    raw = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    raw[client_id] = {
        "secret_hash": hash_password(secret),
        "roles": sorted(roles),
        "institution": institution,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


class LoginServer:
    """The provider's HTTP listener, bound at construction so its issuer URL is known at once."""

    def __init__(
        self,
        signer: LocalIssuer,
        data_dir: Path,
        *,
        consortium_file: Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        redirect_origins: Iterable[str] = (),
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._socket = socket.create_server((host, port), reuse_port=False)
        bound = self._socket.getsockname()[1]
        # Listening on every interface: name loopback in the issuer URL (the machine's own view).
        public_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.issuer_url = f"http://{public_host}:{bound}"
        redirects = RedirectPolicy(redirect_origins)
        clients = {cid: Client(cid, redirect_allowed=redirects) for cid in PUBLIC_CLIENTS}
        clients.update(machine_clients(data_dir))
        self.provider = OpenIDProvider(
            issuer_url=self.issuer_url,
            signer=signer,
            people=PeopleDirectory(consortium_file),
            clients=clients,
        )
        self.verifier = TokenVerifier(
            audience=AUDIENCE, issuer=[self.issuer_url, LOCAL_ISSUER], jwks=signer.jwks()
        )
        self._app = build_app(
            self.provider, self.verifier, throttle or LoginThrottle(), redirects.origins
        )
        self._server = uvicorn.Server(
            uvicorn.Config(self._app, log_config=None, access_log=False, lifespan="off")
        )
        self._thread: threading.Thread | None = None

    def allow_origins(self, origins: Iterable[str]) -> None:
        """Answer CORS for these browser origins (OHIF's OIDC client); call before start."""
        install_cors(self._app, list(origins))

    def start(self, timeout: float = 30.0) -> None:
        """Serve in a background thread; return once it accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("login provider did not start")
            time.sleep(0.02)

    def stop(self, grace: float = 5.0) -> None:
        """Stop serving and close the socket."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=grace)
        self._socket.close()
