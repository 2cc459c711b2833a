"""The options of `serve`, checked before anything starts, and the torch threads each worker may use."""

from __future__ import annotations

import os
from dataclasses import dataclass

from omegaconf import DictConfig

from shared import checks
from shared.errors import UsageError

BACKEND_NAMES = ("torch", "onnx")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def available_cores() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` narrows), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, how many workers and threads, and the limits every request is held to."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 1
    backend: str = "torch"
    max_body_bytes: int = 10_000_000
    max_records: int = 256
    batch_wait_ms: float = 0.0
    inline_records: int = 1
    log_requests: bool = False
    log_level: str = "info"
    explain: int = 0

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ServeSettings:
        """The settings of a composed `serve` config; a value that cannot work is a `UsageError` naming the key."""
        workers = checks.whole(cfg.get("workers", 1), "workers", example=1)
        threads = worker_threads(cfg.get("threads"), workers)
        backend = str(cfg.get("backend", "torch"))
        if backend not in BACKEND_NAMES:
            raise UsageError(f"backend={backend} is not one of {', '.join(BACKEND_NAMES)}.", "use backend=torch.")
        wait = cfg.get("batch_wait_ms", 0)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 1000:
            raise UsageError(
                f"batch_wait_ms={wait!r} is not a wait between 0 (off) and 1000 milliseconds.",
                "use batch_wait_ms=0 (no micro-batching) or a few milliseconds, e.g. batch_wait_ms=2.",
            )
        log_requests = cfg.get("log_requests", False)
        if not isinstance(log_requests, bool):
            raise UsageError(f"log_requests={log_requests!r} is not true or false.", "use log_requests=true.")
        log_level = str(cfg.get("log_level", "info")).lower()
        if log_level not in LOG_LEVELS:
            raise UsageError(f"log_level={log_level} is not a level.", f"use one of: {', '.join(LOG_LEVELS)}.")
        port = checks.whole(cfg.get("port", 8000), "port", minimum=0, example=8000)
        if port > 65535:
            raise UsageError(f"port={port} is above 65535, the highest TCP port.", "use e.g. port=8000.")
        return cls(
            host=str(cfg.get("host", "127.0.0.1")),
            port=port,
            workers=workers,
            threads=threads,
            backend=backend,
            max_body_bytes=checks.whole(cfg.get("max_body_bytes", 10_000_000), "max_body_bytes", example=10_000_000),
            max_records=checks.whole(cfg.get("max_records", 256), "max_records", example=256),
            batch_wait_ms=float(wait),
            inline_records=checks.whole(cfg.get("inline_records", 1), "inline_records", minimum=0, example=1),
            log_requests=log_requests,
            log_level=log_level,
            explain=checks.whole(cfg.get("explain", 0), "explain", minimum=0, example=0),
        )


def worker_threads(asked: object, workers: int) -> int:
    """Torch intra-op threads per worker, so that threads × workers never exceeds the cores: more would make the
    workers' threads fight over the cores (oversubscription) and every request slower.

    By default each worker also leaves a core's share to its own HTTP event loop, which runs beside the model:
    on 2 cores, a small CNN at batch 1 with 2 torch threads had a p99 of 93 ms against 7 ms with 1 (README)."""
    cores = available_cores()
    if workers > cores:
        raise UsageError(
            f"workers={workers} is more than the {cores} core(s) this process may use.",
            f"use at most workers={cores}; each worker is a process with its own model.",
        )
    if asked is None:
        return max(1, (cores - workers) // workers)
    threads = checks.whole(asked, "threads", example=1)
    if threads * workers > cores:
        raise UsageError(
            f"threads={threads} × workers={workers} is more than the {cores} core(s) this process may use.",
            f"use threads={max(1, cores // workers)} (or leave threads=null to have it chosen).",
        )
    return threads
