"""OHIF on the single node: the pinned dist, an app-config for this deployment, at /viewer."""

from __future__ import annotations

import json
import mimetypes
import os
import sys
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OHIF_VERSION = "3.13.2"
# Where scripts/ohif.sh (run by scripts/setup.sh) unpacks the pinned npm @ohif/app.
DEFAULT_DIST = (
    Path(os.environ.get("SONOBRIDGE_CACHE", Path.home() / ".cache" / "sonobridge"))
    / "ohif"
    / OHIF_VERSION
    / "package"
    / "dist"
)


@dataclass(frozen=True)
class ViewerLogin:
    """The OIDC client OHIF logs in with (stock OHIF `oidc` block)."""

    issuer: str
    client_id: str = "ohif"


def app_config(dicomweb_root: str, origin: str, login: ViewerLogin | None) -> str:
    """OHIF's app-config.js: this deployment's DICOMweb, its OIDC login, no tour or dialog."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "sonobridge",
        "configuration": {
            "friendlyName": "SonoBridge",
            "name": "sonobridge",
            "wadoUriRoot": dicomweb_root,
            "qidoRoot": dicomweb_root,
            "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config: dict[str, Any] = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "sonobridge",
        "dataSources": [source],
    }
    if login is not None:
        # Absolute URIs: the identity provider matches them exactly against the client's list.
        config["oidc"] = [
            {
                "authority": login.issuer,
                "client_id": login.client_id,
                "redirect_uri": f"{origin}/callback",
                "silent_redirect_uri": f"{origin}/silent-refresh.html",
                "post_logout_redirect_uri": f"{origin}/",
                "response_type": "code",
                "scope": "openid profile",
                "automaticSilentRenew": True,
                "revokeAccessTokenOnSignout": True,
            }
        ]
    return f"window.config = {json.dumps(config, indent=2)};\n"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that navigates away mid-download resets the connection; nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ViewerServer:
    """Serve the OHIF dist on its own origin with an SPA fallback and a generated app-config."""

    def __init__(self, dist: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        if not (dist / "index.html").is_file():
            raise FileNotFoundError(f"no OHIF dist at {dist}; scripts/ohif.sh fetches it")
        self.dist = dist
        self.dicomweb_root = ""
        self.login: ViewerLogin | None = None
        owner = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                # Set before the base class serves the request from inside its __init__.
                self.extensions_map = {**mimetypes.types_map, ".wasm": "application/wasm"}
                super().__init__(*args, directory=str(dist), **kwargs)

            def end_headers(self) -> None:
                # Cross-origin isolation lets cornerstone decode with SharedArrayBuffer.
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                super().end_headers()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/app-config.js":
                    body = app_config(owner.dicomweb_root, owner.origin, owner.login).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/javascript")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if not (dist / path.lstrip("/")).is_file():
                    # Client routes (/viewer?StudyInstanceUIDs=..., /callback) are the app's.
                    self.path = "/index.html"
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        # Bound now, so the origin the services must allow is known before they start.
        self._server = _QuietServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        """This server's origin (CORS allows it on DICOMweb; OIDC redirects come back to it)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()


def find_dist(configured: Path | None = None) -> Path | None:
    """The OHIF dist to serve: the configured one, else the setup's cache, else none."""
    for candidate in (configured, DEFAULT_DIST):
        if candidate is not None and (candidate / "index.html").is_file():
            return candidate
    return None
