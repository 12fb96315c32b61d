"""FastAPI plumbing every service shares: health, readiness, metrics, problem+json, auth."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import sqlalchemy.exc
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sonobridge.common.auth import Principal, TokenVerifier, one_authorization
from sonobridge.common.cors import install_cors
from sonobridge.common.logging import stack_summary
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import PROBLEM_JSON, Problem, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

# Connection-level failures of PostgreSQL (SQLAlchemy) and of S3 (urllib3 under the MinIO
# client): the dependency is down or restarting, so the request may succeed when retried.
SQL_OUTAGES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)
S3_OUTAGES = ("MaxRetryError", "ProtocolError", "NewConnectionError")


def dependency_outages() -> tuple[type[Exception], ...]:
    """SQL_OUTAGES, plus urllib3's S3_OUTAGES once something (the MinIO client) has loaded it."""
    # Looked up, not imported: the single node has no S3 client, and importing urllib3 only to
    # name exceptions nothing there can raise costs its start-up ~0.02 CPU s.
    s3 = sys.modules.get("urllib3.exceptions")
    if s3 is None:
        return SQL_OUTAGES
    return (*SQL_OUTAGES, *(getattr(s3, name) for name in S3_OUTAGES))


RETRY_AFTER_S = 5

ReadinessCheck = Callable[[], None]
"""A callable that raises when a dependency is unreachable."""


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    """Render a domain error as application/problem+json."""
    # A protocol may require headers on its errors (tus: Tus-Version on a 412).
    headers: dict[str, str] = dict(getattr(problem, "headers", None) or {})
    if isinstance(problem, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        problem.to_dict(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers or None,
    )


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestEdge:
    """Count and time each request; answer any unexpected exception with problem+json 500.

    One plain ASGI layer for both (not `@app.middleware("http")`, whose task group and memory
    streams cost more CPU than a small STOW-RS route): each is a wrapper around every message
    a request sends. Requests are counted by method, route template and status, and timed to
    their response's start. A 500's log line names the exception type and where it was raised,
    never its message: messages of database and DICOM errors echo the values involved
    (patient names, IDs); it carries an error id the answer quotes.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children by (method, route, status): looking one up by its labels
        # takes a lock and builds tuples, twice per request. Routes are templates: bounded.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = time.perf_counter()
        observed = started = False

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            method = scope["method"]
            # A client may send any token as its method: unknown ones share one label, so
            # neither the metric's series nor this cache grow with what callers invent.
            key = (method if method in _METHODS else "OTHER", _route_template(scope), status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._labelled(*key)
            if children[0] is not None:
                children[0].inc()
                children[1].observe(time.perf_counter() - begun)

        async def send_observed(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if not observed:
                    observe(int(message["status"]))
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except BaseException as exc:
            if not observed:  # raised before answering: counted as the 500 it becomes
                observe(500)
            if not isinstance(exc, Exception) or not await self._answer(scope, send, exc, started):
                raise
        else:
            if not observed:  # returned without answering
                observe(500)

    def _labelled(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        if route in ("/metrics", "/healthz", "/readyz"):
            return None, None
        metrics = self.metrics
        return (
            metrics.http_requests.labels(method, route, str(status)),
            metrics.http_latency.labels(method, route),
        )

    async def _answer(self, scope: Scope, send: Send, exc: Exception, started: bool) -> bool:
        """Answer what `exc` means, or return False for the caller to re-raise it."""
        if isinstance(exc, ClientDisconnect):
            # The caller hung up mid-request (a phone losing 4G): nobody is left to answer.
            log.info(
                "client went away during %s %s",
                scope.get("method", ""),
                getattr(scope.get("route"), "path", "unmatched"),
            )
            return True
        if isinstance(exc, dependency_outages()):
            if started:
                return False
            await _unavailable(scope, send, exc)
            return True
        error_id = str(uuid.uuid4())
        log.error(
            "unexpected %s.%s answering %s %s (error id %s)",
            type(exc).__module__,
            type(exc).__qualname__,
            scope.get("method", ""),
            # The route template, not the path: paths carry UIDs.
            getattr(scope.get("route"), "path", "unmatched"),
            error_id,
            extra={
                "error_id": error_id,
                "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "stack": stack_summary(exc),
            },
        )
        if started:
            # Headers are out; all that is left is to cut the response short.
            return False
        body = {
            "type": "https://sonobridge.invalid/problems/internal",
            "title": "Internal error",
            "status": 500,
            "detail": f"unexpected error; quote error id {error_id} when reporting it",
            "instance": scope.get("path", ""),
            "error_id": error_id,
        }
        await _send_problem(send, 500, body)
        return True


async def _unavailable(scope: Scope, send: Send, exc: Exception) -> None:
    # A database or object store restarting is not the caller's fault nor a bug: 503 with
    # Retry-After tells clients (and load balancers) to come back, as they do for a 5xx.
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    method, route = scope.get("method", ""), getattr(scope.get("route"), "path", "unmatched")
    log.warning("%s answering %s %s: a dependency is unreachable", kind, method, route)
    body = Unavailable(
        "a database or object store this service needs is unreachable; retry shortly",
        reason="dependency_unavailable",
    ).to_dict(scope.get("path", ""))
    await _send_problem(send, 503, body, (b"retry-after", str(RETRY_AFTER_S).encode()))


async def _send_problem(
    send: Send, status: int, body: dict[str, Any], *headers: tuple[bytes, bytes]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _route_template(scope: Scope) -> str:
    # Label by route template, never by raw path: paths carry UIDs. Routing leaves the route it
    # chose in the scope, also for one in an included router, which the app's own list of
    # routes does not match; matching again is for what the router did not reach.
    chosen = getattr(scope.get("route"), "path", None)
    if chosen is not None:
        return str(chosen)
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


def create_service_app(
    *,
    service: str,
    metrics: ServiceMetrics,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    verifier: TokenVerifier | None = None,
    title: str | None = None,
    version: str = "0.1.0",
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """Build a FastAPI app with /healthz, /readyz, /metrics and the shared error mapping."""
    app = FastAPI(title=title or f"SonoBridge {service}", version=version)
    app.state.service = service
    app.state.metrics = metrics
    app.state.verifier = verifier
    checks = dict(readiness or {})

    # CORS goes outermost so a browser can read even an unexpected 500.
    app.add_middleware(RequestEdge, metrics=metrics)
    install_cors(app, cors_origins)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = {
            "type": "https://sonobridge.invalid/problems/invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            ),
            "instance": request.url.path,
            "errors": [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ],
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(
            body,
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=getattr(exc, "headers", None),
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        results: dict[str, Any] = {}
        ready = True
        for name, check in checks.items():
            try:
                check()
            except Exception as exc:
                ready = False
                results[name] = f"down: {exc}"
                metrics.dependency_up.labels(name).set(0)
            else:
                results[name] = "up"
                metrics.dependency_up.labels(name).set(1)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the verified caller, or 401 problem+json."""
    verifier: TokenVerifier | None = request.app.state.verifier
    if verifier is None:
        raise Unauthenticated("this service has no token verifier configured")
    header = one_authorization(request.headers.getlist("authorization"))
    # Dependencies declared async run on the event loop; plain ones each cost a worker-thread
    # hop. A token seen before is answered here; a new one (an RS256 check, perhaps a key
    # fetch) is verified on a worker thread, where the whole dependency used to run.
    known = verifier.known(header)
    if known is not None:
        return known
    return await run_in_threadpool(verifier.verify_header, header)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def app_deps(request: Request) -> Any:
    """The use cases' dependencies that the service's bootstrap put on the app."""
    return request.app.state.deps
