"""The `sonobridge` command: run the single-node edition and do county IT's admin tasks."""

from __future__ import annotations

import argparse
import gc
import getpass
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sonobridge.common.logging import configure_logging
from sonobridge.node.edition import SERVICES, SingleNode

DEFAULT_DATA_DIR = Path("var/single-node")
DEMO_DATA_DIR = Path("var/demo")
ROLES = sorted(["operator", "physician", "expert", "coordinator", "engineer", "admin", "service"])


def wait_ready(node: SingleNode, timeout: float = 120.0) -> dict[str, str]:
    """Poll every service's /readyz until all answer 200; return their final state."""
    return wait_urls_ready(node.urls(), timeout)


def wait_urls_ready(urls: dict[str, str], timeout: float = 120.0) -> dict[str, str]:
    """Poll `<url>/readyz` of every service until all answer 200."""
    deadline = time.monotonic() + timeout
    state: dict[str, str] = {}
    while time.monotonic() < deadline:
        state = {name: _readiness(url) for name, url in urls.items()}
        if all(v == "ready" for v in state.values()):
            return state
        # Polled often: readiness is one cheap request per service, and it is start-up time.
        time.sleep(0.05)
    raise SystemExit(f"services not ready after {timeout:.0f}s: {json.dumps(state)}")


def _readiness(url: str) -> str:
    # urllib, not an httpx client: these are plain-HTTP polls, and a client's TLS context
    # (the CA bundle) costs start-up time before the first poll. The node's own service URLs,
    # so never a file: or custom scheme.
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5.0) as answer:  # noqa: S310
            return "ready" if answer.status == 200 else "not ready"
    except urllib.error.HTTPError:
        return "not ready"
    except OSError as exc:
        return f"unreachable: {exc}"


def _stream_address(host: str, streams: Any) -> str:
    """Where InferStream listens; a busy port is said, not waited on: its worker keeps retrying."""
    try:
        return f"{host}:{streams.wait_bound(timeout=5.0)}"
    except RuntimeError:
        return f"not listening yet ({host}:{streams.requested_port} busy? its worker retries)"


def print_endpoints(node: SingleNode, printer: Callable[[str], None] = print) -> None:
    """Print where each service's REST API, docs, metrics and gRPC listen."""
    printer("\nSonoBridge single-node edition is serving (Ctrl-C to stop):")
    for name, url in node.urls().items():
        printer(f"  {name:<12} REST {url}/v1  docs {url}/docs  metrics {url}/metrics")
    for name, host in node.hosts.items():
        grpc_port = host.grpc_port
        if grpc_port:
            printer(f"  {name:<12} gRPC {node.host}:{grpc_port}")
        streams = getattr(host, "streams", None)
        if streams is not None:
            printer(f"  {name:<12} gRPC InferStream {_stream_address(node.host, streams)}")
    if "ingest" in node.hosts:
        dimse = getattr(node.hosts["ingest"].app.state, "dimse", None)
        if dimse is not None and getattr(dimse, "port", None):
            printer(f"  ingest       DICOM C-STORE {node.host}:{dimse.port} (AE SONOBRIDGE)")
        printer(f"  ingest       DICOMweb {node.urls()['ingest']}/dicomweb")
    printer(f"  login (OpenID issuer) {node.login.issuer_url}")
    station = node.station_url()
    if station:
        printer(f"  reading station {station}")
    if node.viewer is not None:
        printer(f"  OHIF viewer  {node.viewer.origin}/viewer")
    printer(f"  data directory: {node.data_dir}")
    printer(
        f"  people log in at the issuer (passwords: uv run sonobridge --data-dir {node.data_dir} "
        "users set-password <user>); machines and tests may mint tokens with `sonobridge token`\n",
    )
    sys.stdout.flush()


def _serve(node: SingleNode) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node.start()
    try:
        wait_ready(node)
        print_endpoints(node)
        # Once serving: drop start-up's few cycles, then keep what it built, which lives as
        # long as the process, out of every later collection.
        gc.collect()
        gc.freeze()
        gc.enable()
        # Signal handlers run on the main thread only, and the kernel may hand SIGTERM to any
        # of the node's threads: an unbounded wait would never wake to run the handler.
        while not stop.wait(0.5):
            pass
    finally:
        node.stop()


def _node(args: argparse.Namespace) -> SingleNode:
    from sonobridge.node.consortium import load, node_settings_for
    from sonobridge.node.edition import NodePorts

    extra: dict[str, Any] = {}
    seed_file = args.consortium_file or (args.data_dir / "consortium.json")
    if Path(seed_file).exists():
        extra = node_settings_for(load(Path(seed_file)), args.data_dir)
    if getattr(args, "viewer_origin", None):
        extra.setdefault("common", {})["http"] = {"cors_origins": args.viewer_origin}
    ports = NodePorts.ephemeral() if getattr(args, "ephemeral_ports", False) else NodePorts()
    if getattr(args, "login_port", None) is not None:
        ports = replace(ports, login=args.login_port)
    services = tuple(getattr(args, "services", None) or SERVICES)
    return SingleNode(
        args.data_dir,
        host=args.host,
        ports=ports,
        extra_settings=extra,
        services=services,
        consortium_file=Path(seed_file),
        viewer_dist=_viewer_dist(args),
        # A viewer allowed cross-origin is also where its login sends people back.
        redirect_origins=(
            *(getattr(args, "redirect_origin", None) or ()),
            *(getattr(args, "viewer_origin", None) or ()),
        ),
    )


def _viewer_dist(args: argparse.Namespace) -> Path | None:
    from sonobridge.node.viewer import find_dist

    if getattr(args, "no_viewer", False):
        return None
    return find_dist(getattr(args, "viewer_dist", None))


def _add_viewer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--viewer-dist", type=Path, help="OHIF dist to serve (default: the setup's cache)"
    )
    parser.add_argument("--no-viewer", action="store_true", help="do not serve OHIF")


def cmd_viewer_config(args: argparse.Namespace) -> None:
    """Print OHIF's app-config.js for a deployment (the k8s ConfigMap's file)."""
    from sonobridge.node.viewer import ViewerLogin, app_config

    login = ViewerLogin(args.issuer, args.client_id) if args.issuer else None
    print(app_config(args.dicomweb, args.origin.rstrip("/"), login), end="")


def cmd_serve(args: argparse.Namespace) -> None:
    """Start the four services (or those named) and serve until stopped."""
    _serve(_node(args))


def cmd_demo(args: argparse.Namespace) -> None:
    """Run the main job: a fresh demo consortium, real uploads, the printed trail."""
    from sonobridge.node.demo import run_demo

    code = run_demo(
        args.data_dir if args.data_dir != DEFAULT_DATA_DIR else DEMO_DATA_DIR,
        host=args.host,
        ephemeral_ports=args.ephemeral_ports,
        exit_after=args.exit_after,
        timeout=args.timeout,
        viewer_dist=_viewer_dist(args),
    )
    sys.exit(code)


def cmd_token(args: argparse.Namespace) -> None:
    """Print a bearer token signed by this node's local issuer."""
    from sonobridge.node.issuer import issuer_for

    issuer = issuer_for(args.data_dir)
    print(
        issuer.issue(
            args.user,
            args.role,
            args.institution,
            consortium=args.consortium,
            ttl_seconds=args.ttl,
        )
    )


def cmd_users(args: argparse.Namespace) -> None:
    """Set a person's login password in the consortium file (read from the terminal or stdin)."""
    from sonobridge.node.identity.accounts import set_password

    consortium_file = args.consortium_file or (args.data_dir / "consortium.json")
    if not Path(consortium_file).exists():
        raise SystemExit(f"no consortium file at {consortium_file} (sonobridge seed writes one)")
    if sys.stdin.isatty():
        password = getpass.getpass(f"new password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        set_password(Path(consortium_file), args.user, password)
    except (KeyError, ValueError) as exc:
        raise SystemExit(str(exc).strip("'\"")) from exc
    print(f"password set for {args.user} in {consortium_file}")


def cmd_users_export(args: argparse.Namespace) -> None:
    """Print the consortium's people as a Keycloak users import (no passwords unless --demo)."""
    from sonobridge.node.consortium import DEMO_PASSWORD, demo_consortium, load
    from sonobridge.node.identity.keycloak_users import keycloak_users

    consortium = demo_consortium() if args.demo else load(args.consortium_file)
    body = keycloak_users(consortium, DEMO_PASSWORD if args.demo else None)
    print(json.dumps(body, indent=2, ensure_ascii=False))


def cmd_clients(args: argparse.Namespace) -> None:
    """Register a machine client (client credentials) and print its new secret once."""
    import secrets

    from sonobridge.node.identity.server import add_machine_client

    secret = secrets.token_urlsafe(32)
    try:
        add_machine_client(args.data_dir, args.client_id, secret, args.role, args.institution)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    print(f"client {args.client_id} registered; its secret (shown once): {secret}")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Run each service's migrations (`python -m sonobridge.<svc> migrate`) on its database."""
    env = {**os.environ}
    if args.edition == "single":
        env.update({"EDITION": "single", "DATA_DIR": str(Path(args.data_dir).resolve())})
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        raise SystemExit(f"unknown services {unknown}; choose from {', '.join(SERVICES)}")
    failed = []
    for service in args.services or SERVICES:
        proc = subprocess.run(
            [sys.executable, "-m", f"sonobridge.{service}", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        print(f"  {service:<12} migrations {status}")
        if proc.returncode != 0:
            failed.append(service)
            print(proc.stderr[-2000:], file=sys.stderr)
    if failed:
        sys.exit(1)


def cmd_seed(args: argparse.Namespace) -> None:
    """Register a consortium's probes, rosters and DIMSE callers through the services' REST APIs."""
    from sonobridge.node.consortium import demo_consortium, load, seed
    from sonobridge.node.issuer import issuer_for

    consortium = load(args.file) if args.file else demo_consortium()
    if args.write_template:
        Path(args.write_template).write_text(consortium.to_json(), encoding="utf-8")
        print(f"wrote {args.write_template}")
        return
    urls = _urls_from_args(args)
    issuer = issuer_for(args.data_dir)
    admin = consortium.with_role("admin")
    if not admin:
        raise SystemExit("the consortium file names no admin")
    wait_urls_ready(urls, timeout=30)
    result = seed(consortium, urls, consortium.token(issuer, admin[0].user))
    (Path(args.data_dir) / "consortium.json").write_text(consortium.to_json(), encoding="utf-8")
    print(
        f"consortium {consortium.id}: probes created {result.devices_created or '-'}, "
        f"already present {result.devices_present or '-'}, rosters {result.rosters}, "
        f"DIMSE callers {result.dimse_callers or '-'}"
    )


def cmd_issuer(args: argparse.Namespace) -> None:
    """Serve this data dir's issuer JWKS until stopped (the cluster edition's AUTH__JWKS_URL)."""
    from sonobridge.node.issuer import JwksServer, issuer_for

    server = JwksServer(issuer_for(args.data_dir), host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    print(f"JWKS at {server.jwks_url} (issuer {server.issuer.issuer})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


def cmd_cluster(args: argparse.Namespace) -> None:
    """Start, stop or inspect the local cluster edition (one process per service)."""
    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.consortium import demo_consortium, seed
    from sonobridge.node.issuer import issuer_for

    run_dir = args.data_dir if args.data_dir != DEFAULT_DATA_DIR else Path("var/cluster")
    consortium = demo_consortium()
    infra = Infra.from_env() if args.action == "up" else Infra("", "", "", "", "")
    edition = ClusterEdition(run_dir, infra, consortium)
    if args.action == "down":
        print(f"stopped: {', '.join(edition.stop()) or 'nothing was running'}")
        return
    if args.action == "status":
        state = edition.status()
        for name, value in state.items():
            print(f"  {name:<12} {value}")
        sys.exit(0 if all(v == "ready" for v in state.values()) else 1)
    edition.prepare(fresh=args.fresh)
    edition.start()
    if not args.no_seed:
        admin = consortium.with_role("admin")[0].user
        seed(consortium, edition.urls(), consortium.token(issuer_for(run_dir), admin))
        (run_dir / "consortium.json").write_text(consortium.to_json(), encoding="utf-8")
    print("SonoBridge cluster edition (one process per service on Kafka, MinIO, PostgreSQL):")
    for name, url in edition.urls().items():
        print(f"  {name:<12} REST {url}/v1  docs {url}/docs  metrics {url}/metrics")
    print(f"  JWKS         {edition.jwks_url}")
    print(f"  logs         {run_dir}/logs/")
    print(f"  test tokens  uv run sonobridge --data-dir {run_dir} token --user <id> --role <role>")
    # This local run trusts the JWKS above; a real cluster trusts the consortium's Keycloak.
    print("  people log in at Keycloak in a real cluster: deploy/keycloak/README.md")


def _urls_from_args(args: argparse.Namespace) -> dict[str, str]:
    urls = {}
    for service in SERVICES:
        value = getattr(args, f"{service}_url")
        urls[service] = value.rstrip("/")
    return urls


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="sonobridge", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the single-node edition")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--consortium-file", type=Path, help="consortium seed file (JSON)")
    serve.add_argument("--ephemeral-ports", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--viewer-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser viewer's origin allowed cross-origin (repeatable; or HTTP__CORS_ORIGINS)",
    )
    serve.add_argument(
        "--service",
        action="append",
        dest="services",
        choices=SERVICES,
        help="run only this service (repeatable; default all four)",
    )
    serve.add_argument(
        "--login-port", type=int, help="the login provider's port (default 8090; 0: any free)"
    )
    serve.add_argument(
        "--redirect-origin",
        action="append",
        metavar="ORIGIN",
        help="an origin (scheme://host:port) the login may send people back to, beyond loopback",
    )
    _add_viewer_options(serve)
    serve.set_defaults(func=cmd_serve)

    viewer = sub.add_parser("viewer-config", help="print OHIF's app-config.js for a deployment")
    viewer.add_argument("--dicomweb", required=True, help="DICOMweb root the browser calls")
    viewer.add_argument("--origin", required=True, help="the viewer's own origin")
    viewer.add_argument("--issuer", help="OIDC issuer OHIF logs in at")
    viewer.add_argument("--client-id", default="ohif")
    viewer.set_defaults(func=cmd_viewer_config)

    demo = sub.add_parser("demo", help="the main job: demo consortium, uploads, trail")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--exit-after", action="store_true", help="return once the trail is done")
    demo.add_argument("--ephemeral-ports", action="store_true", help="listen on free ports")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to follow exams")
    _add_viewer_options(demo)
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser(
        "token", help="issue a bearer token for machines and tests (people log in instead)"
    )
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", required=True, choices=ROLES)
    token.add_argument("--institution")
    token.add_argument("--consortium", default="default")
    token.add_argument("--ttl", type=int, default=8 * 3600)
    token.set_defaults(func=cmd_token)

    users = sub.add_parser("users", help="people's logins (passwords in the consortium file)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    set_pw = users_sub.add_parser(
        "set-password", help="set a person's password, read from the terminal or stdin"
    )
    set_pw.add_argument("user")
    set_pw.add_argument("--consortium-file", type=Path, help="default: <data-dir>/consortium.json")
    set_pw.set_defaults(func=cmd_users)
    export = users_sub.add_parser(
        "export-keycloak", help="print the people as a Keycloak users import (sonobridge realm)"
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--consortium-file", type=Path, help="people, without passwords")
    source.add_argument("--demo", action="store_true", help="the demo's people and password")
    export.set_defaults(func=cmd_users_export)

    clients = sub.add_parser("clients", help="machine clients of the single node's login")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    add_client = clients_sub.add_parser("add", help="register a client-credentials client")
    add_client.add_argument("client_id")
    add_client.add_argument("--role", action="append", required=True, choices=ROLES)
    add_client.add_argument("--institution")
    add_client.set_defaults(func=cmd_clients)

    migrate = sub.add_parser("migrate", help="run every service's database migrations")
    migrate.add_argument(
        "--edition",
        choices=["single", "cluster"],
        default="single",
        help="single: SQLite files in --data-dir; cluster: each service's DB__URL from the env",
    )
    migrate.add_argument("services", nargs="*", help=f"some of {', '.join(SERVICES)} (default all)")
    migrate.set_defaults(func=cmd_migrate)

    seed_cmd = sub.add_parser(
        "seed", help="register probes, rosters and DIMSE calling AE titles from a consortium file"
    )
    seed_cmd.add_argument("--file", type=Path, help="consortium JSON (default: the demo one)")
    seed_cmd.add_argument("--write-template", type=Path, help="write the demo file and stop")
    for n, service in enumerate(SERVICES):
        seed_cmd.add_argument(f"--{service}-url", default=f"http://127.0.0.1:{8081 + n}")
    seed_cmd.set_defaults(func=cmd_seed)

    issuer = sub.add_parser("issuer", help="serve the local issuer's JWKS for the cluster edition")
    issuer.add_argument("--host", default="127.0.0.1")
    issuer.add_argument("--port", type=int, default=8089)
    issuer.set_defaults(func=cmd_issuer)

    cluster = sub.add_parser("cluster", help="the cluster edition on this machine")
    cluster.add_argument("action", choices=["up", "down", "status"])
    cluster.add_argument("--fresh", action="store_true", help="drop the databases first")
    cluster.add_argument("--no-seed", action="store_true", help="skip the demo consortium")
    cluster.set_defaults(func=cmd_cluster)

    args = parser.parse_args(argv)
    if args.command != "serve":
        # Only `serve` defers collection until it is ready (see __main__).
        gc.enable()
    configure_logging("sonobridge", args.log_level, json_format=not sys.stderr.isatty())
    logging.getLogger("sonobridge").setLevel(args.log_level)
    args.func(args)


if __name__ == "__main__":
    main()
