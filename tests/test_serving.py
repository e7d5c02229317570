"""finetext serve: the API's answers, its refusals (each 4xx with a one-line message), request batching, and
a bounded load test against a real server process on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pandas as pd
import pytest
from conftest import tiny_run
from fastapi.testclient import TestClient

import finetext
from finetext.cli import main
from finetext.serving.app import create_app
from finetext.serving.load import BAD_REQUESTS, oversized_body_status, run_load, wait_until_healthy
from finetext.serving.settings import ServeConfig

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def single_dir(tiny_model, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("serve") / "sst2"
    finetext.train(tiny_run(tiny_model, out, dataset="sst2", epochs=1))
    return str(out)


@pytest.fixture(scope="module")
def pair_dir(tiny_model, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("serve") / "mrpc"
    finetext.train(tiny_run(tiny_model, out, dataset="glue/mrpc", epochs=1))
    return str(out)


@pytest.fixture(scope="module")
def client(single_dir):
    cfg = ServeConfig(max_texts=4, max_chars=200, max_body_bytes=4000, precision="fp32")
    with TestClient(create_app(single_dir, cfg)) as test_client:
        yield test_client


def test_predict_answers_like_finetext_predict(client, single_dir):
    texts = ["a gripping, beautifully acted film", "a dull and lifeless mess"]
    expected = finetext.predict(single_dir, texts, precision="fp32")
    answer = client.post("/predict", json={"texts": texts})
    assert answer.status_code == 200
    for got, want in zip(answer.json(), expected, strict=True):
        assert got["label"] == want["label"] and set(got) == {"label", "score", "scores"}
        assert got["scores"] == pytest.approx(want["probabilities"], abs=1e-5)
        assert got["score"] == pytest.approx(max(got["scores"].values()))
    one = client.post("/predict", json={"text": texts[0]})
    assert one.status_code == 200 and one.json()["label"] == expected[0]["label"]  # one object, not a list


def test_info_health_and_openapi(client):
    info = client.get("/info").json()
    assert info["labels"] == ["negative", "positive"] and info["max_length"] == 64
    assert info["text_pairs"] is False and info["limits"] == {"max_texts": 4, "max_chars": 200,
                                                               "max_body_bytes": 4000}
    assert client.get("/health").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["texts"]["anyOf"][0]["maxItems"] == 4
    assert "/predict" in schema["paths"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"texts": []}, 422, "texts: List should have at least 1 item"),
    ({"texts": ["a"] * 5}, 422, "texts: List should have at most 4 items"),
    ({"texts": ["fine", 7]}, 422, "texts[1]: Input should be a valid string"),
    ({"texts": "not a list"}, 422, "texts: Input should be a valid list"),
    ({"text": "x" * 201}, 422, "text: String should have at most 200 characters"),
    ({"texts": ["ok", "   "]}, 422, "texts[1] is empty"),
    ({"text": "a", "texts": ["b"]}, 422, 'give either "text"'),
    ({}, 422, 'give either "text"'),
    (["a list"], 422, "the body must be a JSON object"),
    ({"texts": ["a"], "top_k": 2}, 422, "top_k: Extra inputs are not permitted"),
    ({"text": "a", "text_pair": "b"}, 422, "this model classifies single texts"),
    ({"texts": ["a"], "text_pairs": ["b", "c"]}, 422, "1 texts but 2 text_pairs"),
])
def test_bad_requests_get_a_4xx_with_one_line(client, body, status, message):
    answer = client.post("/predict", json=body)
    assert answer.status_code == status
    assert message in answer.json()["detail"] and "\n" not in answer.json()["detail"]


def test_malformed_json_oversized_and_non_json_bodies(client):
    assert client.post("/predict", content=b'{"texts": [', headers={"content-type": "application/json"}
                       ).json()["detail"].startswith("malformed JSON")
    big = client.post("/predict", content=json.dumps({"texts": ["x" * 150] * 40}),
                      headers={"content-type": "application/json"})
    assert big.status_code == 413 and "over 4000 bytes" in big.json()["detail"]
    form = client.post("/predict", content=b"text=a", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_pair_model_needs_pairs_and_scores_them(pair_dir):
    with TestClient(create_app(pair_dir, ServeConfig(precision="fp32"))) as pair_client:
        assert pair_client.get("/info").json()["text_pairs"] is True
        refused = pair_client.post("/predict", json={"texts": ["He left."]})
        assert refused.status_code == 422 and "sentence pairs" in refused.json()["detail"]
        texts, pairs = ["He left early.", "The cat sat."], ["He went home early.", "Stocks fell."]
        answer = pair_client.post("/predict", json={"texts": texts, "text_pairs": pairs}).json()
        expected = finetext.predict(pair_dir, texts, pairs, precision="fp32")
        assert [a["label"] for a in answer] == [e["label"] for e in expected]
        assert answer[1]["scores"] == pytest.approx(expected[1]["probabilities"], abs=1e-5)
        one = pair_client.post("/predict", json={"text": texts[0], "text_pair": pairs[0]}).json()
        assert one["scores"] == pytest.approx(expected[0]["probabilities"], abs=1e-5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(single_dir):
    """`finetext serve` in its own process, as a user starts it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "finetext", "serve", single_dir, "--port", str(port),
                                "--precision", "fp32"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_healthy("127.0.0.1", port, timeout_s=120)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_server_survives_a_load_test_with_bad_requests_mixed_in(server, data_dir):
    texts = pd.read_parquet(data_dir / "sst2" / "validation.parquet")["text"].tolist()
    report = run_load("127.0.0.1", server, texts, requests=2000, concurrency=16, bad_every=10)
    assert report.errors == [] and report.dropped == 0
    assert report.refused_as_expected == 200 and len(report.latencies_ms) == 1800
    assert oversized_body_status("127.0.0.1", server) == 413
    health = json.loads(_get(server, "/health"))
    assert health["texts_predicted"] >= 1800
    assert health["batches"] < 1800  # concurrent requests were pooled into shared forward passes
    assert set(report.refused) == {name for name, *_ in BAD_REQUESTS} and len(BAD_REQUESTS) >= 6  # each kind


def _get(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return answer.read().decode()


def test_serve_refuses_a_taken_port_and_a_missing_model(server, single_dir, tmp_path, capsys):
    assert main(["serve", single_dir, "--port", str(server)]) == 2
    line = capsys.readouterr().err.strip()
    assert f"cannot listen on 127.0.0.1:{server}" in line and "--port" in line and "\n" not in line
    assert main(["serve", str(tmp_path / "nothing"), "--port", str(free_port())]) == 2
    assert "model directory not found" in capsys.readouterr().err
    assert main(["serve", single_dir, "--max-texts", "0"]) == 2
    assert "max-texts must be a positive integer" in capsys.readouterr().err
