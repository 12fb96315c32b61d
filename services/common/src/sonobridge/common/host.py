"""Run one service's HTTP and gRPC servers and background workers, and stop them cleanly."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import grpc
import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

Worker = Callable[[threading.Event], None]
"""A background loop that runs until its stop event is set."""

Release = Callable[[], None]
"""Closes one resource the host owns (a pool, a client) once nothing runs on it."""


class ServiceHost:
    """Owns a service's listeners and worker threads for the life of the process."""

    def __init__(
        self,
        name: str,
        *,
        app: FastAPI,
        http_host: str,
        http_port: int,
        grpc_server: grpc.Server | None = None,
        grpc_port: int | None = None,
        workers: dict[str, Worker] | None = None,
        releases: list[Release] | None = None,
    ) -> None:
        self.name = name
        self.app = app
        self.grpc_server = grpc_server
        self.grpc_port = grpc_port
        if grpc_port is not None:
            app.state.grpc_port = grpc_port
        self.workers = dict(workers or {})
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._releases = list(releases or [])
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                app,
                host=http_host,
                port=http_port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
        )

    @property
    def http_port(self) -> int:
        """The bound HTTP port (useful when configured as 0)."""
        for server in self._uvicorn.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("HTTP server is not started")

    def start(self, timeout: float = 30.0) -> None:
        """Start gRPC, the workers and HTTP; return once HTTP accepts connections."""
        if self.grpc_server is not None:
            self.grpc_server.start()
        for name, worker in self.workers.items():
            thread = threading.Thread(
                target=self._guard, args=(name, worker), name=f"{self.name}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        http = threading.Thread(target=self._uvicorn.run, name=f"{self.name}-http", daemon=True)
        http.start()
        self._threads.append(http)
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not http.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: HTTP server did not start")
            time.sleep(0.02)
        log.info("%s started", self.name, extra={"http_port": self.http_port})

    def _guard(self, name: str, worker: Worker) -> None:
        # A worker that dies must not take the process down silently: log and restart it.
        while not self.stop_event.is_set():
            try:
                worker(self.stop_event)
            except Exception:
                log.exception("%s worker %s crashed; restarting", self.name, name)
                self.stop_event.wait(1.0)
            else:
                return

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let workers finish their current item, then return."""
        self.stop_event.set()
        self._uvicorn.should_exit = True
        if self.grpc_server is not None:
            self.grpc_server.stop(grace).wait(grace)
        for thread in self._threads:
            thread.join(timeout=grace)
        self._release()

    def _release(self) -> None:
        # The web framework caches endpoint callables for the life of the process, and with
        # them what they close over: a stopped host's pools would never be collected. Close
        # them here, once; a failing release must not keep the others open.
        releases, self._releases = self._releases, []
        for release in releases:
            try:
                release()
            except Exception:
                log.exception("%s: releasing a resource on stop failed", self.name)

    def serve_forever(self) -> None:
        """Start, then block until SIGTERM or SIGINT."""
        self.start()
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        # Python runs signal handlers only on the main thread; when the kernel hands SIGTERM to
        # a worker thread, an unbounded wait would never wake to run it. Wake up regularly.
        while not self.stop_event.wait(0.5):
            pass
        self.stop()
