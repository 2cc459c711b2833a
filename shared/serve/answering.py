"""Records in, rows out: what `/predict` does between the HTTP request and the response, free of HTTP.

Every record goes through the project's own `parse_record`, alone (`predict`'s rule: a bad record is its own
error, the others are answered), then the readable ones through `shared.predict.predict_values` together: the
same columns `predict` writes. The model computes one request at a time per worker, so concurrent requests never
multiply torch's threads: a small request (`inline_records`) on the event loop itself, a larger one on the model's
thread, so the loop stays free to answer `/health` and read other requests meanwhile. With `batch_wait_ms`,
concurrent requests are gathered into one forward pass on the model's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from shared.errors import PortfolioError, RecordError
from shared.io import finite_values
from shared.predict import predict_values
from shared.project import Project
from shared.runs import Run

RECORD_FIX = "correct this record: GET /metadata (or /docs) shows the fields a record takes."

Rows = list[dict[str, Any]]


@dataclass
class Answer:
    """One record's outcome: its rows, or its error and fix (a record `parse_record` refused)."""

    rows: Rows = field(default_factory=list)
    error: str | None = None
    fix: str | None = None


@dataclass(frozen=True)
class Incoming:
    """One record of a request: what `parse_record` gets (JSON, or an uploaded file's bytes) and what the log keeps."""

    payload: Any
    logged: Any


def plain(value: Any) -> Any:
    """`value` as JSON can carry it: NumPy scalars and arrays as Python ones, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return finite_values(value.item())
    return finite_values(value)


class Answerer:
    """A loaded run answering parsed records with the project's hooks, as `predict` does."""

    def __init__(self, project: Project, run: Run, cfg: DictConfig) -> None:
        self.project, self.run, self.cfg = project, run, cfg
        self._configs: dict[int, DictConfig] = {}

    def parse(self, payload: Any) -> tuple[Any, Answer | None]:
        """A record's model input, or the answer that refuses it (the message `predict` gives)."""
        try:
            return self.project.parse_record(payload, self.run, self.cfg), None
        except RecordError as error:
            return None, Answer(error=str(error), fix=RECORD_FIX)
        except PortfolioError as error:  # a record this run cannot answer at all (similar items of a rating model)
            return None, Answer(error=error.problem, fix=error.fix)

    def answer(self, payloads: list[Any], explain: int) -> list[Answer]:
        """Every record's answer: parsed alone, the readable ones predicted together."""
        parsed = [self.parse(payload) for payload in payloads]
        rows = iter(self.rows([value for value, refused in parsed if refused is None], explain))
        return [refused if refused is not None else Answer(rows=next(rows)) for _, refused in parsed]

    def rows(self, values: list[Any], explain: int) -> list[Rows]:
        """The rows answering each parsed record (`explain` > 0 adds the explanation column)."""
        if not values:  # every record refused: nothing to stack, no forward pass
            return []
        return [plain(rows) for rows in predict_values(self.project, self.run, values, self._config(explain))]

    def _config(self, explain: int) -> DictConfig:
        if explain not in self._configs:  # merged once per value: OmegaConf merges cost more than a small forward
            self._configs[explain] = OmegaConf.merge(self.cfg, {"explain": explain})
        return self._configs[explain]


class RequestLog:
    """`<run>/requests.jsonl`: one line per record answered or refused, for monitoring to read back later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, route: str, records: list[Incoming], answers: list[Answer]) -> None:
        request = uuid.uuid4().hex
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        lines = [
            json.dumps(
                plain(
                    {
                        "time": stamp,
                        "request": request,
                        "route": route,
                        "index": index,
                        "record": record.logged,
                        "rows": answer.rows,
                        "error": answer.error,
                    }
                ),
                default=str,
                allow_nan=False,
            )
            for index, (record, answer) in enumerate(zip(records, answers, strict=True))
        ]
        with self._lock, self.path.open("a", encoding="utf-8") as stream:
            stream.write("".join(line + "\n" for line in lines))


class ModelWorker:
    """Where a worker's model computes, one request at a time, and the optional micro-batching in front of it.

    A request of at most `inline_records` records is answered on the event loop: handing it to the model's thread
    and back costs two thread wake-ups, which on 2 cores measured about 0.5 ms of a small CNN's p50 and 0.7 ms of
    its p99 (README, "Serving"). A larger request goes to the model's thread, so a long batch never holds up
    `/health`. A lock keeps the two from computing at once. `observe(records)` is told the size of each forward
    pass (a metric).
    """

    def __init__(
        self,
        answerer: Answerer,
        executor: Executor,
        batch_wait_ms: float,
        max_records: int,
        observe: Callable[[int], None],
        inline_records: int,
    ) -> None:
        self.answerer, self.executor, self.observe = answerer, executor, observe
        self.wait, self.max_records, self.inline_records = batch_wait_ms / 1000, max_records, inline_records
        self._computing = asyncio.Lock()  # the model's one-at-a-time: inline answers and the model thread's
        self._pending: list[tuple[list[Any], int, asyncio.Future[list[Rows]]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def call(self, function: Callable[..., Any], *arguments: Any) -> Any:
        """Run `function` on the model's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *arguments)

    async def answer(self, payloads: list[Any], explain: int) -> list[Answer]:
        """Every record's answer. Without micro-batching, parsing and predicting are one step, inline or one hop to
        the model's thread; with it, the parsed records wait up to `batch_wait_ms` for other requests' to share a
        forward pass."""
        if self.wait <= 0:
            async with self._computing:
                if len(payloads) <= self.inline_records:
                    return self._answer_now(payloads, explain)
                return await self.call(self._answer_now, payloads, explain)
        parsed = await self.call(lambda: [self.answerer.parse(payload) for payload in payloads])
        rows = iter(await self._gathered([value for value, refused in parsed if refused is None], explain))
        return [refused if refused is not None else Answer(rows=next(rows)) for _, refused in parsed]

    def _answer_now(self, payloads: list[Any], explain: int) -> list[Answer]:
        answers = self.answerer.answer(payloads, explain)
        readable = sum(answer.error is None for answer in answers)
        if readable:
            self.observe(readable)
        return answers

    async def _gathered(self, values: list[Any], explain: int) -> list[Rows]:
        if not values:
            return []
        future: asyncio.Future[list[Rows]] = asyncio.get_running_loop().create_future()
        self._pending.append((values, explain, future))
        if sum(len(pending[0]) for pending in self._pending) >= self.max_records:
            await self._run_pending()
        elif self._flush is None:
            self._flush = asyncio.create_task(self._flush_later())
        return await future

    def _forward(self, values: list[Any], explain: int) -> list[Rows]:
        self.observe(len(values))
        return self.answerer.rows(values, explain)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.wait)
        self._flush = None
        await self._run_pending()

    async def _run_pending(self) -> None:
        """One forward pass per `explain` value for everything gathered; each request gets back its own rows."""
        pending, self._pending = self._pending, []
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for explain in sorted({item[1] for item in pending}):
            group = [item for item in pending if item[1] == explain]
            values = [value for item in group for value in item[0]]
            try:
                rows = await self.call(self._forward, values, explain)
            except Exception as error:  # each waiting request gets the error, as it would have alone
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for request_values, _, future in group:
                if not future.done():
                    future.set_result(rows[start : start + len(request_values)])
                start += len(request_values)
