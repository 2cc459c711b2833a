"""The core of `serve`, on the project in tests/ (which adds no request schema: the generic one applies): the
command's refusals, `promote` and the run served by default, limits, loading states, micro-batching, the request
log and the per-app metrics."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient
from omegaconf import OmegaConf

from shared.errors import RunNotFoundError, UsageError
from shared.promotion import PROMOTED_FILE, served_run_dir
from shared.runs import Run, load_run
from shared.serve import settings as settings_module
from shared.serve.app import create_app
from shared.serve.settings import ServeSettings
from tests.conftest import finished_runs, refused, train_for_module
from tests.serving import build_app, serve_config, served
from tests.tiny_project.project import TinyProject

TINY = TinyProject()
POINT = {"x": 2.0, "y": 0.1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_for_module(tmp_path_factory, TINY.name, "trainer=cpu", "logger=csv")


def test_settings_refuse_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "available_cores", lambda: 2)

    def settings(**options: object) -> ServeSettings:
        return ServeSettings.from_config(OmegaConf.create(options))

    assert settings().threads == 1 and settings(workers=2).threads == 1 and settings(threads=2).threads == 2
    for options, phrase in [
        ({"workers": 3}, "more than the 2 core(s)"),
        ({"threads": 3}, "threads=3 × workers=1"),
        ({"workers": 2, "threads": 2}, "threads=2 × workers=2"),
        ({"workers": 0}, "workers=0"),
        ({"port": 70000}, "above 65535"),
        ({"batch_wait_ms": -1}, "batch_wait_ms=-1"),
        ({"backend": "tensorflow"}, "backend=tensorflow"),
        ({"log_requests": "yes"}, "log_requests='yes'"),
        ({"inline_records": -1}, "inline_records=-1"),
    ]:
        with pytest.raises(UsageError) as raised:
            settings(**options)
        assert phrase in raised.value.problem and raised.value.fix, (options, raised.value)


def test_the_serve_command_refuses_before_listening(cli, tiny_run: Path) -> None:
    onnx = cli(TINY, "serve", f"run={tiny_run}", "backend=onnx")
    refused(onnx, 2, "backend=onnx", "has none", f"python -m projects.tiny export run={tiny_run}")
    refused(cli(TINY, "serve", f"run={tiny_run}", "workers=1000"), 2, "workers=1000")
    refused(cli(TINY, "serve", f"run={tiny_run.parent}"), 1, "not a finished run")


def test_the_onnx_backend_serves_the_export_with_the_torch_backends_answers(cli, tiny_run: Path, tmp_path) -> None:
    copy = tmp_path / "runs" / TINY.name / tiny_run.name  # its own export: the module's run stays unexported
    shutil.copytree(tiny_run, copy)
    exported = cli(TINY, "export", f"run={copy}", "parity_inputs=16", "latency_repeats=1")
    assert exported.code == 0, exported.err
    records = {"records": [POINT, {"x": -1.0, "y": 0.5}, {"x": "left", "y": 0}]}
    answers = {}
    for backend in ("torch", "onnx"):
        with served(TINY, copy, f"backend={backend}", "threads=1") as client:
            answers[backend] = client.post("/predict", json=records).json()
            metadata = client.get("/metadata").json()
        assert metadata["backend"] == backend and metadata["threads_per_worker"] == 1
    assert metadata["engine"]["library"] == "onnxruntime" and metadata["engine"]["intra_op_threads"] == 1
    assert metadata["engine"]["file"] == str(copy / "model.onnx")
    torch_results, onnx_results = answers["torch"]["results"], answers["onnx"]["results"]
    assert [item["error"] for item in onnx_results] == [item["error"] for item in torch_results] == [None, None, ANY]
    for expected, actual in zip(torch_results[:2], onnx_results[:2], strict=True):
        [expected_row], [actual_row] = expected["rows"], actual["rows"]
        assert actual_row.keys() == expected_row.keys()
        for column, value in expected_row.items():
            assert actual_row[column] == (pytest.approx(value, abs=1e-4) if isinstance(value, float) else value)


def test_promote_picks_the_run_serve_answers_with(cli, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("first", "second"):
        assert cli(TINY, "train", "trainer=cpu", "logger=csv", f"name={name}").code == 0
    first, second = finished_runs(isolated, TINY.name)
    runs_dir = isolated / "runs"
    capsys.readouterr()
    assert served_run_dir(runs_dir, TINY.name, None) == second  # nothing promoted: the latest, with a warning
    assert "no promoted tiny run: serving the latest" in capsys.readouterr().err

    result = cli(TINY, "promote", f"run={first}")
    assert result.code == 0, result.err
    record = json.loads((runs_dir / TINY.name / PROMOTED_FILE).read_text())
    assert record["run"] == first.name and record["headline"] == "test/acc"
    assert served_run_dir(runs_dir, TINY.name, None) == first
    assert served_run_dir(runs_dir, TINY.name, second) == second  # run= still wins
    with served(TINY, None) as client:
        metadata = client.get("/metadata").json()
        assert metadata["run"]["name"] == first.name and metadata["run"]["promoted"] is True

    compared = cli(TINY, "compare")
    assert compared.code == 0, compared.err
    [row] = [line for line in compared.out.splitlines() if first.name in line]
    assert "| yes |" in row and "| yes |" not in next(line for line in compared.out.splitlines() if second.name in line)

    refused(cli(TINY, "promote", f"run={isolated}"), 1, "not a finished run")
    assert cli(TINY, "promote").code == 0  # the latest
    assert served_run_dir(runs_dir, TINY.name, None) == second
    shutil.rmtree(second)
    with pytest.raises(RunNotFoundError, match="gone or unfinished"):
        served_run_dir(runs_dir, TINY.name, None)
    refused(cli(TINY, "serve"), 1, "promoted run", "promote")


def test_the_generic_schema_serves_a_project_that_adds_none(tiny_run: Path, cli, tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    points.write_text("x,y\n2.0,0.1\nleft,0\n")
    output = tmp_path / "predictions.csv"
    assert cli(TINY, "predict", f"run={tiny_run}", f"input={points}", f"output={output}").code == 3
    cli_error = output.read_text().splitlines()[2].split(",")[-1]
    with served(TINY, tiny_run) as client:
        schema = client.get("/metadata").json()["input_schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is True
        answer = client.post("/predict", json={"records": [POINT, {"x": "left", "y": 0}]}).json()
        assert answer["results"][0]["rows"][0]["blob"] == "right"
        assert answer["results"][1]["error"] == cli_error.strip('"')
        assert client.post("/predict", json={"x": 1}).json()["error"] == "a point needs the fields x and y."


def test_limits_and_malformed_requests_are_4xx_with_a_fix(tiny_run: Path) -> None:
    with served(TINY, tiny_run, "max_body_bytes=300", "max_records=2") as client:
        big = client.post("/predict", json={"records": [POINT] * 20})
        assert big.status_code == 413 and "over this server's limit of 300 bytes" in big.json()["error"]
        streamed = client.post("/predict", content=iter([b'{"records": [', b" " * 400, b"]}"]))
        assert streamed.status_code == 413, streamed.text
        many = client.post("/predict", json={"records": [POINT] * 3})
        assert many.status_code == 413 and "limit of 2" in many.json()["error"] and "max_records" in many.json()["fix"]
        json_type, text_type = {"content-type": "application/json"}, {"content-type": "text/plain"}
        for response, status, phrase in [
            (client.post("/predict", content=b"{not json", headers=json_type), 400, "not JSON"),
            (client.post("/predict", content=b"x=1", headers=text_type), 415, "text/plain"),
            (client.post("/predict", files={"file": ("a.png", b"png")}), 415, "no file uploads"),
            (client.post("/predict", json={"records": {}}), 422, "non-empty list"),
            (client.post("/predict?explain=abc", json=POINT), 422, "explain"),
            (client.post("/predict?explain=2", json=POINT), 400, "cannot explain"),
            (client.get("/nowhere"), 404, "Not Found"),
            (client.get("/predict"), 405, "Method Not Allowed"),
        ]:
            assert response.status_code == status and phrase in response.json()["error"], response.text
            assert response.json().get("fix"), response.text
        metrics = client.get("/metrics").text
        assert 'route="/predict",status="413"} 2.0' in metrics and 'route="unmatched",status="404"} 1.0' in metrics


def test_health_answers_while_the_model_loads_and_ready_says_why_not(tiny_run: Path) -> None:
    cfg = serve_config(TINY, f"run={tiny_run}")
    release = threading.Event()

    def slow_load() -> Run:
        release.wait(10)
        return load_run(TINY, tiny_run, cfg.paths)

    with TestClient(create_app(TINY, cfg, ServeSettings.from_config(cfg), load=slow_load)) as client:
        assert client.get("/health").status_code == 200
        waiting = client.get("/ready")
        assert waiting.status_code == 503 and "still loading" in waiting.json()["error"]
        assert client.post("/predict", json=POINT).status_code == 503
        release.set()
        for _ in range(500):
            if client.get("/ready").status_code == 200:
                break
            threading.Event().wait(0.01)
        assert client.post("/predict", json=POINT).status_code == 200

    def broken_load() -> Run:
        raise RunNotFoundError("the run is damaged.", "retrain it.")

    with TestClient(create_app(TINY, cfg, ServeSettings.from_config(cfg), load=broken_load)) as client:
        for _ in range(500):
            if client.get("/ready").json()["error"] != "the model is still loading.":
                break
        failed = client.get("/ready").json()
        assert failed == {"error": "the model could not be loaded: the run is damaged.", "fix": "retrain it."}


def test_micro_batching_gathers_concurrent_requests_into_one_forward_pass(tiny_run: Path) -> None:
    with served(TINY, tiny_run) as plain:
        expected = plain.post("/predict", json=POINT).json()["results"]
    with served(TINY, tiny_run, "batch_wait_ms=200") as client:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.post("/predict", json=POINT), range(8)))
        assert all(answer.status_code == 200 and answer.json()["results"] == expected for answer in answers)
        metrics = client.get("/metrics").text
    forward_passes = float(metrics.split("portfolio_forward_records_count ")[1].split()[0])
    assert forward_passes < 8, metrics  # 8 requests, fewer passes: some were answered together


def test_small_requests_are_answered_on_the_event_loop_and_batches_on_the_model_thread(tiny_run: Path) -> None:
    """`inline_records` (default 1) saves a small request the two thread hand-offs; a batch goes to the model's
    thread, and the model still computes one request at a time."""

    def watch(client: TestClient) -> tuple[list[str], list[int]]:
        answerer = client.app.state.served.worker.answerer  # type: ignore[attr-defined]
        threads, computing, overlap = [], [0], [0]
        original = answerer.rows

        def rows(values: list, explain: int) -> list:
            computing[0] += 1
            overlap[0] = max(overlap[0], computing[0])
            threading.Event().wait(0.005)  # long enough for another request to try to compute meanwhile
            threads.append(threading.current_thread().name)
            computing[0] -= 1
            return original(values, explain)

        answerer.rows = rows
        return threads, overlap

    with served(TINY, tiny_run) as client:
        threads, overlap = watch(client)
        assert client.post("/predict", json=POINT).status_code == 200
        assert client.post("/predict", json={"records": [POINT, POINT]}).status_code == 200
        assert not threads[0].startswith("model") and threads[1].startswith("model"), threads
        with ThreadPoolExecutor(8) as pool:
            bodies = [POINT if index % 2 else {"records": [POINT, POINT]} for index in range(16)]
            answers = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
        assert all(answer.status_code == 200 for answer in answers) and overlap[0] == 1
    with served(TINY, tiny_run, "inline_records=0") as client:
        threads, _ = watch(client)
        assert client.post("/predict", json=POINT).status_code == 200
        assert threads[0].startswith("model"), threads


def test_log_requests_appends_records_and_answers_under_the_run(tiny_run: Path) -> None:
    log = tiny_run / "requests.jsonl"
    with served(TINY, tiny_run) as client:
        client.post("/predict", json=POINT)
    assert not log.exists()  # off by default
    try:
        with served(TINY, tiny_run, "log_requests=true") as client:
            client.post("/predict", json={"records": [POINT, {"x": 1}]})
            client.post("/predict", json=POINT)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        log.unlink(missing_ok=True)
    assert [line["record"] for line in lines] == [POINT, {"x": 1}, POINT]
    assert lines[0]["rows"][0]["blob"] == "right" and lines[1]["error"] and lines[0]["request"] != lines[2]["request"]


def test_each_app_counts_its_own_requests(tiny_run: Path) -> None:
    with served(TINY, tiny_run) as first, served(TINY, tiny_run) as second:
        first.get("/health")
        first.get("/health")
        second.get("/health")
        assert 'route="/health",status="200"} 2.0' in first.get("/metrics").text
        assert 'route="/health",status="200"} 1.0' in second.get("/metrics").text
    assert build_app(TINY, f"run={tiny_run}").state.metrics.registry is not build_app(TINY).state.metrics.registry
