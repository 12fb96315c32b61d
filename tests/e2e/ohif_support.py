"""Serve the pinned OHIF viewer's prebuilt dist on its own origin, pointed at a DICOMweb root."""

from __future__ import annotations

import json
import mimetypes
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OHIF_VERSION = "3.13.2"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SONOBRIDGE_CHROMIUM", "/usr/bin/chromium"))
# LOCAL_INFRA: SwiftShader WebGL, no sandbox (root in CI), no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
]


def ohif_dist() -> Path:
    """The cached OHIF dist, fetched by scripts/ohif.sh on first use (setup.sh --infra does it)."""
    out = subprocess.run(
        [str(REPO / "scripts" / "ohif.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return Path(out.strip().splitlines()[-1])


def app_config(dicomweb_root: str) -> str:
    """OHIF's app-config.js: one DICOMweb data source, no tour, no investigational-use dialog."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "sonobridge",
        "configuration": {
            "friendlyName": "SonoBridge single node",
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
    return f"window.config = {json.dumps(config, indent=2)};\n"


class OhifServer:
    """A static server for OHIF's dist with an SPA fallback and a generated app-config.js."""

    def __init__(self, dist: Path, host: str = "127.0.0.1") -> None:
        owner = self
        # Set once SonoBridge listens; the origin it must allow is known before that.
        self.dicomweb_root = ""

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
                    config = app_config(owner.dicomweb_root).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/javascript")
                    self.send_header("Content-Length", str(len(config)))
                    self.end_headers()
                    self.wfile.write(config)
                    return
                if not (dist / path.lstrip("/")).is_file():
                    # Client routes (/viewer?StudyInstanceUIDs=...) are the app's, not files.
                    self.path = "/index.html"
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        """This server's origin, which SonoBridge must allow."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OhifServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
