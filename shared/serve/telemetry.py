"""What an app counts (Prometheus, in a registry of its own) and the size limit it holds request bodies to.

Both are plain ASGI middleware, outside FastAPI's routing, so a refused body (413) and a request for a route that
does not exist (404) are counted like any other. A server of several worker processes counts in prometheus-client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by `serve` before the workers start), so `/metrics` answers the
whole server's counts from whichever worker takes the scrape.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Mount, Route, WebSocketRoute

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's switch: each process writes its values there


class ServeMetrics:
    """The app's counters and histograms, in their own `CollectorRegistry`: two apps in one process (tests, several
    projects) never share or collide on a metric."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "portfolio_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "portfolio_request_seconds",
            "time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_records = Histogram(
            "portfolio_batch_records", "records per /predict request", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.forward_records = Histogram(
            "portfolio_forward_records",
            "records per forward pass (above the requests' own with micro-batching)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.record_errors = Counter(
            "portfolio_record_errors", "records refused (unreadable, invalid)", registry=self.registry
        )

    def exposition(self) -> bytes:
        """The Prometheus text of `/metrics`: this app's own registry, or, when the server's workers count in
        multiprocess mode, every worker's values merged from the shared folder (the totals of the whole server)."""
        folder = os.environ.get(MULTIPROCESS_DIR)
        if not folder:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)
        return generate_latest(merged)


def route_of(scope: Scope) -> str:
    """The route's template (`/predict`), never the raw path: one series per route, however paths vary."""
    route = scope.get("route")
    return route.path if isinstance(route, Route | Mount | WebSocketRoute) else "unmatched"


class MetricsMiddleware:
    """Counts every HTTP request by route, method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = route_of(scope)
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


class BodyLimitMiddleware:
    """Refuses a request body over `max_bytes` with 413, by its Content-Length before reading anything, and while
    reading when it comes in chunks without one: a client cannot make the server hold an unbounded body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        received, started = 0, False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(received)
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge as error:
            if not started:
                await self._refuse(send, error.size)

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "error": f"the request body is {size:,} bytes or more, over this server's limit of "
                f"{self.max_bytes:,} bytes.",
                "fix": "send fewer or smaller records per request (resize images first), "
                "or start the server with a larger max_body_bytes=.",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """Raised inside a request's `receive` once its body passes the limit."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
