"""Helpers of the serve tests: an app of a trained run behind FastAPI's test client, ready to answer, and a
schemathesis pass over its own OpenAPI schema."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from omegaconf import DictConfig

from shared.config import SHARED_CONFIGS, compose_config
from shared.project import Project
from shared.registry import load_project
from shared.serve.app import create_app
from shared.serve.settings import ServeSettings

TRANSPORT_KEYS = ("method", "url", "headers", "params", "json", "content", "data", "files", "cookies")


def serve_config(project: Project, *overrides: str) -> DictConfig:
    """The composed `serve` config of `project`, as the command line would make it."""
    options = [f"project={project.name}", "trainer=cpu", *overrides]
    return compose_config(project.name, "base_serve", options, SHARED_CONFIGS)


def build_app(project: str | Project, *overrides: str) -> FastAPI:
    chosen = load_project(project) if isinstance(project, str) else project
    cfg = serve_config(chosen, *overrides)
    return create_app(chosen, cfg, ServeSettings.from_config(cfg))


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    """Poll /ready: the model loads in the background, so /health answers first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/ready")
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.text
        if "could not be loaded" in response.json()["error"]:
            raise AssertionError(response.json())
        time.sleep(0.01)
    raise AssertionError("the model did not load in time")


@contextmanager
def served(project: str | Project, run: Path | None, *overrides: str) -> Iterator[TestClient]:
    """A test client of the app serving `run` (the default run when None), once its model is loaded."""
    app = build_app(project, *([f"run={run}"] if run else []), *overrides)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def fuzz(client: TestClient, examples: int) -> Counter[tuple[str, int]]:
    """Schemathesis cases from the app's own OpenAPI schema, `examples` per operation, sent through `client`;
    every answer must be below 500. Returns how many of each (route, status) came back."""
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    statuses: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        _fuzz_operation(client, result.ok(), examples, statuses)
    return statuses


def _fuzz_operation(client: TestClient, operation: Any, examples: int, statuses: Counter[tuple[str, int]]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        request = case.as_transport_kwargs(base_url=str(client.base_url))
        if request.get("files"):
            request["files"] = [(name, _as_bytes(part)) for name, part in request["files"]]
        response = client.request(**{key: value for key, value in request.items() if key in TRANSPORT_KEYS})
        statuses[(operation.path, response.status_code)] += 1
        assert response.status_code < 500, (case.path, case.query, case.body, response.text)

    call()


def _as_bytes(part: Any) -> tuple[Any, ...]:
    """A multipart part as httpx sends one: schemathesis (written for requests) may give its content as a number."""
    filename, content, *rest = part if isinstance(part, tuple) else (None, part)
    data = content if isinstance(content, bytes) else str(content).encode()
    return (filename, data, *rest)
