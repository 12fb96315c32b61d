"""The `sonobridge` command: run the single-node edition and do county IT's admin tasks."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

from sonobridge.common.infrastructure import local_issuer
from sonobridge.common.logging import configure_logging
from sonobridge.node.edition import SingleNode

DEFAULT_DATA_DIR = Path("var/single-node")


def _wait_ready(node: SingleNode, timeout: float = 120.0) -> dict[str, str]:
    """Poll every service's /readyz until all answer 200; return their final state."""
    deadline = time.monotonic() + timeout
    state: dict[str, str] = {}
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            for name, url in node.urls().items():
                try:
                    state[name] = (
                        "ready" if client.get(f"{url}/readyz").status_code == 200 else ("not ready")
                    )
                except httpx.HTTPError as exc:
                    state[name] = f"unreachable: {exc}"
            if all(v == "ready" for v in state.values()):
                return state
            time.sleep(0.5)
    raise SystemExit(f"services not ready after {timeout:.0f}s: {json.dumps(state)}")


def _print_endpoints(node: SingleNode) -> None:
    print("\nSonoBridge single-node edition is serving (Ctrl-C to stop):")
    for name, url in node.urls().items():
        print(f"  {name:<12} REST {url}/v1  docs {url}/docs  metrics {url}/metrics")
    for name, host in node.hosts.items():
        grpc_port = getattr(host.app.state, "grpc_port", None)
        if grpc_port:
            print(f"  {name:<12} gRPC {node.host}:{grpc_port}")
    print(f"  data directory: {node.data_dir}")
    print("  tokens: sonobridge token --user <id> --role <role> --institution <id>\n")


def _serve(node: SingleNode) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node.start()
    try:
        _wait_ready(node)
        _print_endpoints(node)
        stop.wait()
    finally:
        node.stop()


def cmd_serve(args: argparse.Namespace) -> None:
    """Start all four services and serve until stopped."""
    _serve(SingleNode(args.data_dir, host=args.host))


def cmd_demo(args: argparse.Namespace) -> None:
    """Start the single node, show it ready, and keep serving."""
    _serve(SingleNode(args.data_dir, host=args.host))


def cmd_token(args: argparse.Namespace) -> None:
    """Print a bearer token signed by this node's local issuer."""
    issuer = local_issuer(Path(args.data_dir).resolve())
    print(
        issuer.issue(
            args.user,
            args.role,
            args.institution,
            consortium=args.consortium,
            ttl_seconds=args.ttl,
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="sonobridge", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the single-node edition")
    serve.add_argument("--host", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run the single-node edition with the demo consortium")
    demo.add_argument("--host", default="127.0.0.1")
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="issue a bearer token for local use")
    token.add_argument("--user", required=True)
    token.add_argument(
        "--role",
        action="append",
        required=True,
        choices=sorted(
            ["operator", "physician", "expert", "coordinator", "engineer", "admin", "service"]
        ),
    )
    token.add_argument("--institution")
    token.add_argument("--consortium", default="default")
    token.add_argument("--ttl", type=int, default=8 * 3600)
    token.set_defaults(func=cmd_token)

    args = parser.parse_args(argv)
    configure_logging("sonobridge", args.log_level, json_format=not sys.stderr.isatty())
    logging.getLogger("sonobridge").setLevel(args.log_level)
    args.func(args)


if __name__ == "__main__":
    main()
