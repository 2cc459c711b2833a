"""`python -m projects.<name> serve`: the run's model behind uvicorn, with one worker or several.

With one worker the run is loaded here, before the server starts, so a bad `run=` is an `error:`/`fix:` on the
terminal like any command's. Several workers are separate processes that each build the app (and load the model)
from an import string: the project and the config reach them through one environment variable, and they count
their requests in one fresh folder (prometheus-client's multiprocess mode), removed when the server stops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile

from fastapi import FastAPI
from omegaconf import DictConfig, OmegaConf

from shared.errors import UsageError
from shared.project import Project
from shared.promotion import served_run_dir
from shared.registry import load_project
from shared.serve.app import create_app
from shared.serve.backends import load_backend
from shared.serve.settings import ServeSettings
from shared.serve.telemetry import MULTIPROCESS_DIR

log = logging.getLogger(__name__)

WORKER_CONFIG = "PORTFOLIO_SERVE_CONFIG"  # what each worker process of a multi-worker server builds its app from


def serve_command(project: Project, cfg: DictConfig) -> None:
    """Check the options, find and load the run, then serve it until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    settings = ServeSettings.from_config(cfg)
    run_dir = served_run_dir(cfg.paths.runs_dir, project.name, cfg.get("run"))
    pinned = OmegaConf.merge(cfg, {"run": str(run_dir)})  # every worker serves this run, whatever is promoted later
    assert isinstance(pinned, DictConfig)
    # worker processes (started after this, importing torch afresh) size their OpenMP pools by it
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.threads))
    if settings.workers == 1:
        run = load_backend(settings.backend, project, run_dir, pinned, settings.threads)
        app: FastAPI | str = create_app(project, pinned, settings, load=lambda: run)
        factory = False
    else:
        if project.config_dir is not None:
            raise UsageError(
                f"{project.name} lives outside projects/, where worker processes cannot find it.", "use workers=1."
            )
        load_backend(
            settings.backend, project, run_dir, pinned, settings.threads
        )  # refuse a bad run here, before any worker starts
        os.environ[WORKER_CONFIG] = json.dumps(
            {"project": project.name, "config": OmegaConf.to_container(pinned, resolve=True)}
        )
        app, factory = "shared.serve.command:worker_app", True
    print(
        f"serving {project.name} run {run_dir} on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker(s) × {settings.threads} thread(s), backend={settings.backend}); "
        f"docs at /docs. Ctrl-C stops it."
    )
    counts = None
    if settings.workers > 1:  # the workers, started after this, each write their counts here; /metrics merges them
        counts = tempfile.mkdtemp(prefix="portfolio-serve-metrics-")
        os.environ[MULTIPROCESS_DIR] = counts
    try:
        uvicorn.run(
            app,
            factory=factory,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
        )
    finally:
        if counts is not None:
            shutil.rmtree(counts, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one worker of a multi-worker server, from the config `serve_command` left in the environment."""
    described = json.loads(os.environ[WORKER_CONFIG])
    project = load_project(described["project"])
    cfg = OmegaConf.create(described["config"])
    return create_app(project, cfg, ServeSettings.from_config(cfg))
