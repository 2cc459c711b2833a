"""`serve` for every project: each endpoint through FastAPI's test client on a tiny trained run, the bad payloads
each project refuses (with the message `predict` gives), and a schemathesis pass over each app's own schema."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

import shared.train
from tests.conftest import REPO, script_module, train_for_module
from tests.serving import fuzz, served

pytestmark = pytest.mark.heavy

TINY_AIRBENCH = ["model=airbench", "model.widths={block1: 16, block2: 32, block3: 32}", "model.whiten_images=200"]
TRAIN = {
    "mnist": ["data=synthetic", "trainer=cpu", "trainer.max_epochs=1", "logger=csv"],
    "housing": ["data=synthetic", "model=ridge", "cv.folds=2"],
    "sentiment": ["data=toy", "trainer=cpu", "logger=csv"],
    "recommender": ["data=synthetic", "trainer=cpu", "logger=csv", "model=item_item", "protocol=ranking"],
    "vision": ["data=synthetic", *TINY_AIRBENCH, "trainer=cpu", "trainer.max_epochs=1", "logger=csv"],
}
DISTRICT = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41,
    "total_rooms": 880,
    "total_bedrooms": None,
    "population": 322,
    "households": 126,
    "median_income": 8.3,
    "ocean_proximity": "NEAR BAY",
}


def png(pixels: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[5:23, 12:16] = 255  # a "1"
PHOTO = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
GOOD = {
    "mnist": {"image": base64.b64encode(png(DIGIT)).decode()},
    "housing": DISTRICT,
    "sentiment": {"text": "a great film"},
    "recommender": {"user": 1, "k": 3},
    "vision": {"image": base64.b64encode(png(PHOTO, "JPEG")).decode()},
}
COLUMNS = {  # what `predict` writes for each project, the error column aside
    "mnist": ["digit", "probability"],
    "housing": ["median_house_value", "interval_low", "interval_high"],
    "sentiment": ["text", "label", "probability", "p_positive", "warning"],
    "recommender": ["rank", "item", "title", "score"],
    "vision": ["label", "probability", "label_2", "probability_2", "label_3", "probability_3"],
}
RECORD_FIELDS = {"mnist": "image", "housing": "ocean_proximity", "sentiment": "text", "recommender": "user"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny run per project; the gan is judged by the mnist run. Without plots: they are most of a tiny
    train's time, and serving never reads them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared.train, "write_plots", lambda *arguments, **options: [])
        trained = {name: train_for_module(tmp_path_factory, name, *overrides) for name, overrides in TRAIN.items()}
        gan = ["data=synthetic", "trainer=cpu", "trainer.max_epochs=1", "logger=csv", f"judge={trained['mnist']}"]
        trained["gan"] = train_for_module(tmp_path_factory, "gan", *gan)
    return trained


@pytest.fixture(scope="module")
def client_of(runs: dict[str, Path]) -> Iterator[Callable[[str], TestClient]]:
    """A client of each project's app, started on first use and kept for the module: one model load per project."""
    with ExitStack() as stack:
        clients: dict[str, TestClient] = {}

        def client(project: str) -> TestClient:
            if project not in clients:
                clients[project] = stack.enter_context(served(project, runs[project]))
            return clients[project]

        yield client


@pytest.mark.parametrize("project", list(TRAIN))
def test_every_endpoint_answers_with_predicts_columns(runs: dict[str, Path], project: str) -> None:
    run = runs[project]
    with served(project, run) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"status": "ready"}
        response = client.post("/predict", json=GOOD[project])
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["run"] == run.name and answer["predicted"] == 1 and answer["failed"] == 0
        [result] = answer["results"]
        assert result["error"] is None and list(result["rows"][0]) == COLUMNS[project]

        metadata = client.get("/metadata").json()
        trained = json.loads((run / "metrics.json").read_text())
        assert metadata["project"] == project and metadata["run"]["path"] == str(run)
        assert metadata["headline"] == {"metric": trained["headline"], "value": trained["metrics"][trained["headline"]]}
        assert metadata["git_commit"]["trained"] == trained["git_commit"]
        assert metadata["model"]["target"] == trained["model"]
        schema = metadata["input_schema"]
        assert schema["type"] == "object" and RECORD_FIELDS.get(project, "image") in schema["properties"]

        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'portfolio_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics.text
        assert "portfolio_request_seconds_bucket" in metrics.text
        assert "portfolio_batch_records_count 1.0" in metrics.text

        assert client.get("/docs").status_code == 200
        body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
        assert ("multipart/form-data" in body) == (project in ("mnist", "vision"))


BAD = [
    ("mnist", {"image": "bm90IGFuIGltYWdl"}, "not a readable image"),
    ("mnist", {"image": "%%%"}, "not base64 image data"),
    ("mnist", {"image": 5}, "not int"),
    ("mnist", {"picture": []}, "needs an 'image' field"),
    ("vision", {"image": [[1, 2], [3]]}, "pixels must be numbers in a rectangular"),
    ("housing", {**DISTRICT, "ocean_proximity": "MARS"}, "ocean_proximity 'MARS' is not one of"),
    ("housing", {**DISTRICT, "median_income": "rich"}, "median_income 'rich' is not a number"),
    ("housing", {key: value for key, value in DISTRICT.items() if key != "latitude"}, "latitude is missing"),
    ("housing", [1, 2], "a district is a mapping of column name to value, not list"),
    ("sentiment", {"text": "  "}, "empty text"),
    ("sentiment", {"text": 3}, "the text must be a string, not int"),
    ("sentiment", {"words": "good"}, "a record needs a 'text' field"),
    ("recommender", {"item": 999999}, "unknown item id 999999"),
    ("recommender", {"user": 1, "k": "many"}, "k=many is not a whole number"),
    ("recommender", {}, "a record needs a user, an item, or both"),
]


@pytest.mark.parametrize(("project", "record", "phrase"), BAD, ids=[f"{item[0]}-{item[2][:24]}" for item in BAD])
def test_a_bad_record_gets_422_with_predicts_message(client_of, project: str, record: Any, phrase: str) -> None:
    client = client_of(project)
    response = client.post("/predict", json=record)
    assert response.status_code == 422, response.text
    assert phrase in response.json()["error"] and response.json()["fix"], response.json()
    batch = client.post("/predict", json={"records": [GOOD[project], record]}).json()
    assert batch["predicted"] == 1 and batch["failed"] == 1, batch
    good, bad = batch["results"]
    assert good["error"] is None and list(good["rows"][0]) == COLUMNS[project]
    assert phrase in bad["error"] and bad["rows"] == []


@pytest.mark.parametrize("project", ["mnist", "vision"])
def test_image_projects_take_uploads_base64_and_pixel_arrays(client_of, project: str) -> None:
    client = client_of(project)
    image = png(DIGIT if project == "mnist" else PHOTO)
    upload = client.post("/predict", files={"file": ("image.png", image, "image/png")})
    assert upload.status_code == 200, upload.text
    by_json = client.post("/predict", json={"image": base64.b64encode(image).decode()}).json()
    assert upload.json()["results"][0]["rows"] == by_json["results"][0]["rows"]
    pixels = (DIGIT if project == "mnist" else PHOTO).tolist()
    by_pixels = client.post("/predict", json={"image": pixels}).json()
    assert by_pixels["results"][0]["rows"] == by_json["results"][0]["rows"]  # PNG is lossless

    two = [("file", ("a.png", image, "image/png")), ("file", ("b.txt", b"no image here", "text/plain"))]
    batch = client.post("/predict", files=two).json()
    assert batch["predicted"] == 1 and "not a readable image" in batch["results"][1]["error"]
    broken = client.post("/predict", files={"file": ("broken.png", image[:40], "image/png")})
    assert broken.status_code == 422 and "not a readable image" in broken.json()["error"]


def test_text_projects_refuse_uploads_and_explain_on_request(client_of) -> None:
    client = client_of("sentiment")
    upload = client.post("/predict", files={"file": ("a.txt", b"a great film", "text/plain")})
    assert upload.status_code == 415 and "no file uploads" in upload.json()["error"]
    explained = client.post("/predict?explain=2", json={"text": "a great film"}).json()
    assert "explanation" in explained["results"][0]["rows"][0]
    assert client.post("/predict?explain=-1", json={"text": "a film"}).status_code == 422


def test_the_answer_is_what_the_predict_command_writes(runs: dict[str, Path], client_of, cli, tmp_path: Path) -> None:
    output = tmp_path / "predictions.jsonl"
    result = cli("sentiment", "predict", f"run={runs['sentiment']}", "text=a great film", f"output={output}")
    assert result.code == 0, result.err
    [written] = [json.loads(line) for line in output.read_text().splitlines()]
    [row] = client_of("sentiment").post("/predict", json={"text": "a great film"}).json()["results"][0]["rows"]
    assert {key: value for key, value in written.items() if key not in ("input", "error")} == row


def test_the_gan_serves_health_readiness_metadata_and_metrics_only(runs: dict[str, Path]) -> None:
    with served("gan", runs["gan"]) as client:
        metadata = client.get("/metadata").json()
        assert metadata["project"] == "gan" and metadata["input_schema"] is None
        assert metadata["headline"]["metric"] == "test/fd"
        assert client.post("/predict", json={}).status_code == 404
        assert "/predict" not in client.get("/openapi.json").json()["paths"]
        assert "portfolio_requests_total" in client.get("/metrics").text


@pytest.mark.parametrize("project", [*TRAIN, "gan"])
def test_schemathesis_finds_no_server_error(client_of, project: str) -> None:
    statuses = fuzz(client_of(project), examples=6)
    predicted = sum(count for (route, status), count in statuses.items() if route == "/predict")
    assert predicted >= 1 or project == "gan", statuses


Server = tuple[subprocess.Popen[str], int]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def real_server(runs: dict[str, Path]) -> Iterator[Server]:
    """`python -m projects.sentiment serve workers=2` in its own process on a free loopback port, started before this
    module's first test so that its start-up (imports, mostly) overlaps with the tests; the last test talks to it."""
    port = free_port()
    command = [sys.executable, "-m", "projects.sentiment", "serve", f"run={runs['sentiment']}", f"port={port}"]
    options = ["trainer=cpu", "log_level=warning", "workers=2", "threads=1"]
    server = subprocess.Popen([*command, *options], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield server, port
    if server.poll() is None:
        server.kill()
        server.communicate()


def predict_count(metrics_text: str) -> float:
    """`/predict` requests answered 200, as the Prometheus text of `/metrics` counts them."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "portfolio_requests_total"
        and sample.labels.get("route") == "/predict"
        and sample.labels.get("status") == "200"
    )


def test_the_real_server_answers_over_loopback_and_stops_cleanly(real_server: Server) -> None:
    server, port = real_server
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:  # both workers ready (a connection each)
            try:
                if all(httpx.get(f"{url}/ready", timeout=5).status_code == 200 for _ in range(4)):
                    break
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(0.1)
        # a new connection per request, so that the two workers share them
        answer = httpx.post(f"{url}/predict", json={"records": [{"text": "a great film"}, {"text": ""}]}, timeout=5)
        assert answer.status_code == 200 and answer.json()["predicted"] == 1, answer.text
        assert answer.json()["results"][1]["error"] == "empty text"
        for _ in range(5):
            assert httpx.post(f"{url}/predict", json={"text": "dull"}, timeout=5).status_code == 200
        # whichever worker takes the scrape, it reports the whole server's six
        assert [predict_count(httpx.get(f"{url}/metrics", timeout=5).text) for _ in range(4)] == [6.0] * 4
        # the serving benchmark's clients, each library: answers timed, refusals counted as errors, every request sent
        benchmark = script_module("serve_benchmark")
        answered = 6.0
        for library in benchmark.POSTERS:
            tally, _ = asyncio.run(benchmark.drive(url, {"text": "dull"}, 2, 8, 30.0, library=library))
            assert (len(tally.latencies), tally.errors) == (8, 0) and all(0 < each < 30 for each in tally.latencies)
            refused, _ = asyncio.run(benchmark.drive(url, {"text": 5}, 2, 4, 30.0, library=library))
            assert (len(refused.latencies), refused.errors) == (0, 4)
            answered += benchmark.WARM_UP_REQUESTS + 8
        assert predict_count(httpx.get(f"{url}/metrics", timeout=5).text) == answered
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"on http://127.0.0.1:{port}" in out and "Traceback" not in err, err
