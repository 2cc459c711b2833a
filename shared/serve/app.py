"""The FastAPI app of `serve`: one project's run behind `/predict`, `/health`, `/ready`, `/metadata`, `/metrics`.

The model is loaded once, in the lifespan, in the background: `/health` answers at once, `/ready` once the model
is loaded (and warmed with the project's example record). A worker of a multi-worker server loads before it
accepts connections, so that none is handed to a worker that cannot answer it yet. Every refusal is JSON with the
problem and its fix, the words `predict` uses: a bad record 422, an oversized body or batch 413, an unknown route
404; never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from omegaconf import DictConfig, OmegaConf
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from shared.api_schema import (
    ErrorResponse,
    Health,
    PredictResponse,
    RecordResult,
    RecordSchema,
    generic_record_schema,
    record_json_schema,
    request_body,
)
from shared.config import project_config_dir
from shared.errors import PortfolioError, RecordError, RunNotFoundError
from shared.project import Project
from shared.promotion import promoted_run, served_run_dir
from shared.provenance import git_commit
from shared.runs import REQUEST_LOG, Run
from shared.serve.answering import RECORD_FIX, Answerer, Incoming, ModelWorker, RequestLog
from shared.serve.backends import engine, load_backend
from shared.serve.settings import ServeSettings
from shared.serve.telemetry import BodyLimitMiddleware, MetricsMiddleware, ServeMetrics

log = logging.getLogger(__name__)

PREDICT_OPTION_FILE = "predict.yaml"


class Refusal(Exception):
    """A request this server will not answer: its HTTP status, and the problem and fix the body carries."""

    def __init__(self, status: int, problem: str, fix: str | None = None, results: list[RecordResult] | None = None):
        super().__init__(problem)
        self.status, self.problem, self.fix, self.results = status, problem, fix, results


@dataclass
class Served:
    """What the app serves once loaded; until then `failure` says why it is not (or None while loading)."""

    run: Run | None = None
    schema: RecordSchema | None = None
    worker: ModelWorker | None = None
    request_log: RequestLog | None = None
    metadata: dict[str, Any] | None = None
    failure: PortfolioError | None = None


def with_predict_options(project: Project, cfg: DictConfig) -> DictConfig:
    """The config the project's record hooks see: its own `predict` options (how many classes to list, where to
    cut a text), as its `predict.yaml` sets them, under whatever the serve command line set."""
    path = project_config_dir(project.name, project.config_dir) / PREDICT_OPTION_FILE
    if not path.is_file():
        return cfg
    options = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(options, dict)
    defaults = {key: value for key, value in options.items() if key not in ("defaults", "hydra", "project")}
    merged = OmegaConf.merge(OmegaConf.create(defaults), cfg)
    assert isinstance(merged, DictConfig)
    return merged


def create_app(
    project: Project, cfg: DictConfig, settings: ServeSettings, load: Callable[[], Run] | None = None
) -> FastAPI:
    """The app for `project`, serving the run `load` returns (by default: `run=`, else the promoted run, else the
    latest, through `settings.backend`)."""
    hook_cfg = with_predict_options(project, cfg)
    load_run = load or (lambda: default_load(project, cfg, settings))
    metrics = ServeMetrics()
    served = Served()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.threads)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        loading = asyncio.create_task(_load(served, project, hook_cfg, settings, load_run, executor, metrics))
        if settings.workers > 1:
            # Workers share one listening socket, and the kernel hands each new connection to a worker that is
            # accepting. One still loading would take connections and answer 503 while another could answer them,
            # so a worker of several accepts only once its model is loaded (or has failed to load).
            await loading
        try:
            yield
        finally:
            loading.cancel()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=f"{project.name} model API",
        description=project.summary,
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    )
    app.state.served = served
    app.state.metrics = metrics
    _add_error_handlers(app)
    _add_routes(app, project, served, settings, metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def default_load(project: Project, cfg: DictConfig, settings: ServeSettings) -> Run:
    """The run `serve` answers with (`run=`, else the promoted one, else the latest), through the chosen backend."""
    run_dir = served_run_dir(cfg.paths.runs_dir, project.name, cfg.get("run"))
    return load_backend(settings.backend, project, run_dir, cfg, settings.threads)


async def _load(
    served: Served,
    project: Project,
    cfg: DictConfig,
    settings: ServeSettings,
    load: Callable[[], Run],
    executor: ThreadPoolExecutor,
    metrics: ServeMetrics,
) -> None:
    """Load the run on the model's thread, describe it, and answer the project's example once (a warm start)."""
    loop = asyncio.get_running_loop()
    try:
        run = await loop.run_in_executor(executor, load)
        schema = project.request_schema(run)
        answerer = Answerer(project, run, cfg)
        worker = ModelWorker(
            answerer,
            executor,
            settings.batch_wait_ms,
            settings.max_records,
            metrics.forward_records.observe,
            settings.inline_records,
        )
        metadata = await loop.run_in_executor(executor, describe, project, run, schema, settings)
        if schema is not None and schema.example is not None:
            await loop.run_in_executor(executor, _warm_up, answerer, schema.example)
    except PortfolioError as error:
        log.error("cannot serve: %s", error)
        served.failure = error
        return
    except Exception as error:  # a bug while loading: logged with its traceback, /ready says so without it
        log.exception("cannot serve: loading the model failed")
        served.failure = RunNotFoundError(
            f"loading the model failed ({type(error).__name__}); the server's log has the details.",
            "fix the run (or retrain it) and restart the server.",
        )
        return
    served.request_log = RequestLog(run.directory / REQUEST_LOG) if settings.log_requests else None
    served.run, served.schema, served.worker, served.metadata = run, schema, worker, metadata
    # Everything loaded so far lives as long as the server: out of the garbage collector's scans, which otherwise
    # walk torch's and the model's objects again and again, pausing requests.
    gc.collect()
    gc.freeze()
    log.info("serving %s run %s (%s backend)", project.name, run.directory, settings.backend)


def _warm_up(answerer: Answerer, example: Any) -> None:
    """One prediction before the first request: caches filled, lazy data prepared, kernels chosen. An example this
    run cannot answer (a ranking query to a graph exported for rating pairs) is a warning, not a failed start:
    requests of that kind get the same clear refusal, the others are answered."""
    value, refused = answerer.parse(example)
    if refused is not None:
        log.warning("the warm-up example was refused: %s", refused.error)
        return
    try:
        answerer.rows([value], 0)
    except PortfolioError as error:
        log.warning("the warm-up example could not be answered: %s", error.problem)


def describe(project: Project, run: Run, schema: RecordSchema | None, settings: ServeSettings) -> dict[str, Any]:
    """`/metadata`: what is served, how well it scored, from which code, and what a record looks like."""
    headline = run.metrics.get("headline")
    scores = run.metrics.get("metrics") or {}
    try:
        promoted = promoted_run(run.paths.runs_dir, project.name)
    except PortfolioError:
        promoted = None
    return {
        "project": project.name,
        "summary": project.summary,
        "run": {
            "name": run.name,
            "path": str(run.directory),
            "promoted": promoted is not None and promoted.resolve() == run.directory.resolve(),
        },
        "model": {
            "target": str(run.config.model.get("_target_", "")),
            "class": type(run.model).__name__,
            "parameters": run.metrics.get("parameters"),
            "details": run.metrics.get("model_details") or {},
        },
        "backend": settings.backend,
        "engine": engine(run),
        "device": str(run.device),
        "headline": {"metric": headline, "value": scores.get(headline)},
        "metrics": scores,
        "git_commit": {"trained": run.metrics.get("git_commit"), "serving": git_commit()},
        "input_schema": None if schema is None else record_json_schema(schema),
        "uploads": bool(schema and schema.files),
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_records": settings.max_records,
            "batch_wait_ms": settings.batch_wait_ms,
            "inline_records": settings.inline_records,
        },
        "workers": settings.workers,
        "threads_per_worker": settings.threads,
    }


def _ready(served: Served) -> Served:
    """The loaded state, or a 503 that says whether the model is still loading or why it failed."""
    if served.failure is not None:
        raise Refusal(503, f"the model could not be loaded: {served.failure.problem}", served.failure.fix)
    if served.run is None:
        raise Refusal(503, "the model is still loading.", "retry in a moment: GET /ready says 200 once it is loaded.")
    return served


def _add_routes(app: FastAPI, project: Project, served: Served, settings: ServeSettings, metrics: ServeMetrics) -> None:
    @app.get("/health", response_model=Health, summary="the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=Health, summary="the model is loaded and warm")
    async def ready() -> dict[str, str]:
        _ready(served)
        return {"status": "ready"}

    @app.get("/metadata", summary="project, run, model, headline metric, git commit, input schema")
    async def metadata() -> dict[str, Any]:
        return _ready(served).metadata or {}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    if not project.reads_records:  # a project without records (a generator): nothing to predict from
        return

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="predict one record or a batch {records: [...]}",
        responses={400: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
    )
    async def predict(
        request: Request,
        explain: int | None = Query(None, ge=0, le=100, description="add the N features that weighed most"),
    ) -> JSONResponse:
        state = _ready(served)
        assert state.worker is not None and state.run is not None
        records, single = await _records(request, state.schema, settings.max_records)
        metrics.batch_records.observe(len(records))
        answers = await state.worker.answer(
            [record.payload for record in records], settings.explain if explain is None else explain
        )
        metrics.record_errors.inc(sum(answer.error is not None for answer in answers))
        if state.request_log is not None:
            await state.worker.call(state.request_log.write, "/predict", records, answers)
        results = [
            RecordResult(index=index, rows=answer.rows, error=answer.error, fix=answer.fix)
            for index, answer in enumerate(answers)
        ]
        failed = sum(answer.error is not None for answer in answers)
        if single and failed:
            raise Refusal(422, f"{answers[0].error}.", answers[0].fix)
        if failed == len(answers):
            raise Refusal(422, f"none of the {len(answers)} records could be read.", results[0].fix, results)
        body = PredictResponse(run=state.run.name, predicted=len(answers) - failed, failed=failed, results=results)
        return JSONResponse(body.model_dump())

    _document_predict_body(app, served, settings)


async def _records(request: Request, schema: RecordSchema | None, max_records: int) -> tuple[list[Incoming], bool]:
    """The request's records (JSON: one, or `{"records": [...]}`; multipart: one per uploaded file) and whether it
    is a single record, which is answered or refused as a whole."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        if schema is None or not schema.files:
            raise Refusal(415, "this project takes no file uploads.", "send JSON records (application/json).")
        form = await request.form(max_files=max_records, max_part_size=2**31)
        files = [value for value in form.getlist("file") if isinstance(value, UploadFile)]
        if not files:
            fix = "send each image as a part named file (curl -F file=@image.png)."
            raise Refusal(422, "the upload has no file part named 'file'.", fix)
        records = []
        for upload in files:
            data = await upload.read()
            about = {"file": upload.filename, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            records.append(Incoming(data, about))
        return _bounded(records, max_records), len(records) == 1
    if content_type not in ("application/json", "text/json") and not content_type.endswith("+json"):
        accepted = "application/json" + (" or multipart/form-data (a file per part)" if schema and schema.files else "")
        raise Refusal(415, f"the body is {content_type}, which /predict does not read.", f"send {accepted}.")
    body = await request.body()
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refusal(400, f"the body is not JSON ({error}).", 'send one record, or {"records": [...]}.') from error
    if isinstance(data, dict) and "records" in data:
        if not isinstance(data["records"], list) or not data["records"]:
            raise Refusal(422, "'records' must be a non-empty list of records.", 'send {"records": [record, ...]}.')
        return _bounded([Incoming(record, record) for record in data["records"]], max_records), False
    return [Incoming(data, data)], True


def _bounded(records: list[Incoming], max_records: int) -> list[Incoming]:
    if len(records) > max_records:
        raise Refusal(
            413,
            f"{len(records)} records in one request, over this server's limit of {max_records}.",
            f"send at most {max_records} per request, or start the server with a larger max_records=.",
        )
    return records


def _document_predict_body(app: FastAPI, served: Served, settings: ServeSettings) -> None:
    """OpenAPI for `/predict`'s body: the project's record schema (or a batch of them), which the route reads
    itself so that each record is checked by `parse_record` alone. Before the run is loaded the schema is generic."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None and served.run is not None:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema = served.schema if served.run is not None else generic_record_schema()
        if schema is not None:
            body, components = request_body(schema, settings.max_records)
            document["paths"]["/predict"]["post"]["requestBody"] = body
            document.setdefault("components", {}).setdefault("schemas", {}).update(components)
        if served.run is not None:
            app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    def refusal(status: int, problem: str, fix: str | None, results: list[RecordResult] | None = None) -> JSONResponse:
        body = ErrorResponse(error=problem, fix=fix, results=results).model_dump(exclude_none=True)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(Refusal)
    async def refused(request: Request, error: Refusal) -> JSONResponse:
        return refusal(error.status, error.problem, error.fix, error.results)

    @app.exception_handler(PortfolioError)
    async def portfolio_error(request: Request, error: PortfolioError) -> JSONResponse:
        return refusal(400, error.problem, error.fix)

    @app.exception_handler(RecordError)
    async def record_error(request: Request, error: RecordError) -> JSONResponse:  # raised while answering
        return refusal(422, f"{error}.", RECORD_FIX)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}" for item in error.errors()
        )
        return refusal(422, f"the request is not valid ({problems}).", "see GET /docs for what each route takes.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        fix = "see GET /docs for the routes." if error.status_code in (404, 405) else None
        return refusal(error.status_code, str(error.detail), fix)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        log.exception("an error answering %s %s", request.method, request.url.path)
        return refusal(500, f"the server failed on this request ({type(error).__name__}).", "see the server's log.")
