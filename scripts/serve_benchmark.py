"""The serving benchmark: the real server (`python -m projects.<name> serve`) on a free loopback port, driven by
concurrent asyncio clients (httpx), one JSON line per scenario.

    python scripts/benchmark.py serve --project mnist                       # the promoted (else latest) run
    python scripts/benchmark.py serve --project mnist --run runs/mnist/<run> --clients 1,32 --batch-wait-ms 0,2

Each scenario (a client count × a micro-batching wait) sends records one per request (batch 1), the project's
own example record (the one its OpenAPI schema shows), for at most `--requests` requests or `--seconds` seconds,
after a short warm-up. It reports the p50, p95 and p99 latency, the throughput, the errors (any status other
than 200, or a failed connection), and the server's peak resident memory (VmHWM). The server is stopped at the
end of each scenario; the benchmark stops by itself. Targets live in the issues and the README, not in tests.

The client is part of every figure: on two cores it shares the CPU with the server, and its own time per request
counts as latency. So the default client is aiohttp's, whose loop measured as light as a blocking `http.client`
connection (mnist, 1 client: p50 1.28 against 1.26 ms); httpx's asyncio client added about 0.7 ms a request there
(p50 1.94 ms) and more in the tail. `--client httpx` drives the server with httpx instead, to compare. Both send
the same pre-encoded JSON body.

While it times, the client's own garbage collector is off (its heap frozen after the warm-up), as `timeit` does:
on two cores its pauses (up to ~10 ms, a few times a second) are the instrument's, not the server's, and showed
as the slowest requests. `--client-gc` keeps it on, to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]
WARM_UP_REQUESTS = 50
JSON = {"content-type": "application/json"}

Post = Callable[[], Awaitable[int]]  # one POST /predict of the record; its HTTP status


@dataclass
class Tally:
    """Latencies of the answered requests (seconds) and the count of errors."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(project: str, options: list[str], port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", f"projects.{project}", "serve", f"port={port}", "log_level=warning", *options]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(server: subprocess.Popen[str], base_url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                reason = server.stderr.read() if server.stderr else ""
                raise SystemExit(f"the server exited with {server.returncode}: {reason}")
            try:
                if client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def example_record(base_url: str) -> Any:
    """The record the app's own OpenAPI schema shows for /predict."""
    document = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM), in MiB; None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@contextmanager
def collector_off(off: bool) -> Iterator[None]:
    """The client's garbage collector off (its heap frozen first) while it times, when `off`; back on after."""
    if not off:
        yield
        return
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@asynccontextmanager
async def aiohttp_poster(base_url: str, body: bytes, clients: int) -> AsyncIterator[Post]:
    """aiohttp: a pool of `clients` keep-alive connections, and the call that posts `body` to /predict."""
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=aiohttp.ClientTimeout(30)) as session:

        async def post() -> int:
            try:
                async with session.post("/predict", data=body, headers=JSON) as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                raise ConnectionError(str(error)) from error

        yield post


@asynccontextmanager
async def httpx_poster(base_url: str, body: bytes, clients: int) -> AsyncIterator[Post]:
    """httpx's asyncio client: the same pool and call."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def post() -> int:
            try:
                return (await client.post("/predict", content=body, headers=JSON)).status_code
            except httpx.HTTPError as error:
                raise ConnectionError(str(error)) from error

        yield post


# client library -> its poster; a failed connection raises ConnectionError, whichever the library
POSTERS: dict[str, Callable[[str, bytes, int], AbstractAsyncContextManager[Post]]] = {
    "aiohttp": aiohttp_poster,
    "httpx": httpx_poster,
}


async def drive(
    base_url: str,
    record: Any,
    clients: int,
    requests: int,
    seconds: float,
    client_gc: bool = False,
    library: str = "aiohttp",
) -> tuple[Tally, float]:
    """`clients` concurrent loops, each sending one record per request, until `requests` or `seconds` run out; the
    client's garbage collector off while they run, unless `client_gc`."""
    tally, sent = Tally(), 0
    async with POSTERS[library](base_url, json.dumps(record).encode(), clients) as post:
        for _ in range(WARM_UP_REQUESTS):
            await post()

        async def loop() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                begun = time.perf_counter()
                try:
                    status = await post()
                except ConnectionError:
                    tally.errors += 1
                    continue
                if status == 200:
                    tally.latencies.append(time.perf_counter() - begun)
                else:
                    tally.errors += 1

        with collector_off(not client_gc):
            started = time.perf_counter()
            deadline = started + seconds
            await asyncio.gather(*(loop() for _ in range(clients)))
        return tally, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def scenario(arguments: argparse.Namespace, clients: int, batch_wait_ms: float) -> dict[str, Any]:
    port = free_port()
    options = [f"backend={arguments.backend}", f"batch_wait_ms={batch_wait_ms}", "trainer=cpu", *arguments.overrides]
    if arguments.run:
        options.append(f"run={arguments.run}")
    server = start_server(arguments.project, options, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, base_url)
        record = json.loads(arguments.record.read_text()) if arguments.record else example_record(base_url)
        tally, elapsed = asyncio.run(
            drive(
                base_url,
                record,
                clients,
                arguments.requests,
                arguments.seconds,
                arguments.client_gc,
                arguments.client,
            )
        )
        metadata = httpx.get(f"{base_url}/metadata", timeout=10).json()
        memory = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    answered = tally.latencies or [float("nan")]
    return {
        "project": arguments.project,
        "backend": arguments.backend,
        "run": metadata["run"]["path"],
        "model": metadata["model"]["class"],
        "clients": clients,
        "batch": 1,
        "batch_wait_ms": batch_wait_ms,
        "requests": len(tally.latencies) + tally.errors,
        "errors": tally.errors,
        "p50_ms": round(1000 * statistics.median(answered), 2),
        "p95_ms": round(1000 * percentile(answered, 0.95), 2),
        "p99_ms": round(1000 * percentile(answered, 0.99), 2),
        "throughput_rps": round(len(tally.latencies) / elapsed, 1),
        "seconds": round(elapsed, 1),
        "server_peak_rss_mb": memory,
        "threads_per_worker": metadata["threads_per_worker"],
        "cores": len(os.sched_getaffinity(0)),
        "client": arguments.client,
        "client_gc": arguments.client_gc,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="benchmark.py serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", required=True)
    parser.add_argument("--run", help="a run folder (default: the promoted run, else the latest)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--clients", default="1,32", help="comma-separated concurrent client counts")
    parser.add_argument("--batch-wait-ms", default="0", help="comma-separated micro-batching waits (0: off)")
    parser.add_argument("--requests", type=int, default=3000, help="at most this many requests per scenario")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per scenario")
    parser.add_argument("--record", type=Path, help="a JSON file holding the record to send (default: the example)")
    parser.add_argument(
        "--client",
        default="aiohttp",
        choices=sorted(POSTERS),
        help="the HTTP client library that drives the server (its own time per request counts as latency)",
    )
    parser.add_argument(
        "--client-gc",
        action="store_true",
        help="keep the client's garbage collector on while it times (its pauses then count as latency)",
    )
    parser.add_argument("overrides", nargs="*", help="serve options added to every scenario (workers=2 ...)")
    arguments = parser.parse_args(argv)
    for waiting in (float(value) for value in arguments.batch_wait_ms.split(",")):
        for clients in (int(value) for value in arguments.clients.split(",")):
            print(json.dumps(scenario(arguments, clients, waiting)), flush=True)
