"""CPU of the HTTP framework's part of one STOW-RS request, in process, without a server.

Builds the DICOMweb router on `create_service_app` (every middleware, a real token check) and
calls it as uvicorn would with a request its route refuses at once (a text/plain body: 415), so
what is timed is the stack from the first middleware to the route's first check and back: the
part the whole-node figures (stow_layers, stow_floor) cannot resolve under the machine's noise.
Prints the fastest of 9 rounds of 1000 calls, their median, and the Python calls per request
(cProfile; deterministic). `--base DIR` runs another checkout's common and ingest in turns.
Figures, never a pass/fail:

    uv run python bench/ingest/stow_route_cost.py [--base DIR] [--pairs 3]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MEMBERS = ("services/common/src", "services/ingest/src")


async def _measure() -> dict[str, float]:
    from sonobridge.common.auth import LocalIssuer
    from sonobridge.common.http import create_service_app
    from sonobridge.common.metrics import ServiceMetrics
    from sonobridge.ingest.entrypoints import dicomweb

    issuer = LocalIssuer("bench")
    app = create_service_app(service="b", metrics=ServiceMetrics("b"), verifier=issuer.verifier())
    app.include_router(dicomweb.router)
    app.state.deps = object()  # refused before any use case runs
    app.state.public_base_url = None
    bearer = b"Bearer " + issuer.issue("modality", ["service"], "east").encode()

    async def call() -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/dicomweb/studies",
            "raw_path": b"/dicomweb/studies",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"x"),
                (b"authorization", bearer),
                (b"content-type", b"text/plain"),
            ],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5),
            "state": {},
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 415, sent[0]

    for _ in range(300):
        await call()
    rounds = []
    for _ in range(9):
        started = time.process_time()
        for _ in range(1000):
            await call()
        rounds.append((time.process_time() - started) * 1000)  # us per call
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(500):
        await call()
    profile.disable()
    calls = pstats.Stats(profile).total_calls / 500  # type: ignore[attr-defined]
    return {"min_us": min(rounds), "median_us": sorted(rounds)[4], "calls": calls}


def main() -> None:
    """Run this tree (and --base's) in turns; print each run's figures and the load."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="another checkout to run as 'base'")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        import uvloop

        print(json.dumps(uvloop.run(_measure())))
        return
    trees = ([("base", args.base)] if args.base else []) + [("this", REPO)]
    for _ in range(args.pairs):
        for name, tree in trees:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / m) for m in MEMBERS))
            out = subprocess.run(
                [sys.executable, __file__, "--run"], env=env, capture_output=True, text=True
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{name}: {figures['min_us']:.1f} us/request (fastest round), median "
                f"{figures['median_us']:.1f}, {figures['calls']:.0f} Python calls/request, "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
