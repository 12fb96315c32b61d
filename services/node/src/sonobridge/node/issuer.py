"""Serve the local token issuer's JWKS over HTTP so cluster-edition services verify real tokens."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.infrastructure import LOCAL_ISSUER, local_issuer

JWKS_PATH = "/.well-known/jwks.json"


class JwksServer:
    """A tiny HTTP server answering the issuer's JWKS and OpenID discovery document."""

    def __init__(self, issuer: LocalIssuer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.issuer = issuer
        jwks = json.dumps(issuer.jwks()).encode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == JWKS_PATH:
                    body = jwks
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps(
                        {"issuer": issuer.issuer, "jwks_uri": server.jwks_url}
                    ).encode()
                elif self.path == "/healthz":
                    body = b'{"status":"ok"}'
                else:
                    self.send_error(404, "only the JWKS and discovery documents live here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def jwks_url(self) -> str:
        """Where the JWKS is served (AUTH__JWKS_URL)."""
        return f"http://{self._server.server_address[0]}:{self.port}{JWKS_PATH}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until shut down."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def issuer_for(data_dir: Path) -> LocalIssuer:
    """The issuer whose key lives in `data_dir` (created on first use)."""
    issuer = local_issuer(Path(data_dir).resolve())
    assert issuer.issuer == LOCAL_ISSUER
    return issuer
