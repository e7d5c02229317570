"""finetext serve on a network: API keys, HTTPS, request ids and access logs, Prometheus metrics, readiness, a
graceful stop on SIGTERM and several workers, each against a real `finetext serve` process on 127.0.0.1 serving
a one-layer random classifier."""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import random_classifier
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from finetext.cli import main
from finetext.serving import auth
from finetext.serving.app import create_app
from finetext.serving.load import (
    LoadReport,
    LoadTest,
    client_context,
    connection,
    loaded_workers,
    rss_mb,
    run_load,
    self_signed_certificate,
    worker_pids,
)
from finetext.serving.settings import ServeConfig

# Every test here starts server processes (seconds each): make test-fast skips them.
pytestmark = pytest.mark.slow

KEY, OTHER_KEY, WRONG_KEY = (secrets.token_urlsafe(24) for _ in range(3))
TEXTS = ["a gripping, beautifully acted film", "a dull and lifeless mess", "fine", "not my kind of thing"]
SECRET_TEXT = "a body text that must never reach a log"
PREDICT_OK = ("finetext_requests_total", (("route", "/predict"), ("status", "200")))


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory) -> str:
    return str(random_classifier(tmp_path_factory.mktemp("ops") / "model", tiny_model))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path
    tls: ssl.SSLContext | None = None
    probes: list[tuple[int, int, dict]] = field(default_factory=list)
    """(GET /health's status, GET /ready's status, /ready's body) polled while it started."""

    def call(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> Answer:
        conn = connection("127.0.0.1", self.port, 30, self.tls)
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        conn.close()
        return answer

    def predict(self, key: str | None = KEY, **headers: str) -> Answer:
        auth_header = {"Authorization": f"Bearer {key}"} if key else {}
        return self.call("POST", "/predict", {"texts": TEXTS[:2]}, {**auth_header, **headers})

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start(model_dir: str, folder: Path, *flags: object, tls: ssl.SSLContext | None = None) -> Server:
    """`finetext serve` in its own process (stderr to a file), polled until GET /ready answers 200."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "finetext", "serve", model_dir, "--port", str(port),
                                    "--precision", "fp32", "--backend", "pytorch", *map(str, flags)],
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    server = Server(process, port, log, tls)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"finetext serve exited with {process.returncode}: {log.read_text()[-3000:]}"
        try:
            health, ready = server.call("GET", "/health"), server.call("GET", "/ready")
        except OSError:
            time.sleep(0.05)
            continue
        server.probes.append((health.status, ready.status, ready.json()))
        if ready.status == 200:
            return server
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"finetext serve was not ready in 180 s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def secure(model_dir, tmp_path_factory):
    """A server with two API keys, HTTPS (a self-signed certificate made here) and JSON access logs."""
    folder = tmp_path_factory.mktemp("secure")
    keys = folder / "keys.txt"
    keys.write_text(f"# the test's keys\n\n{KEY}\n   {OTHER_KEY}  \n# {WRONG_KEY} is commented out\n")
    cert, key = self_signed_certificate(folder)
    server = start(model_dir, folder, "--api-key-file", keys, "--ssl-certfile", cert, "--ssl-keyfile", key,
                   "--log-format", "json", "--drain-timeout-s", "600", tls=client_context(cert))
    yield server
    idle = connection("127.0.0.1", server.port, 30, server.tls)  # a keep-alive TLS client, idle at the signal
    idle.request("GET", "/health")
    idle.getresponse().read()
    assert server.stop() == 0  # in stop's 60 s: the idle client does not hold the (600 s) drain


def test_api_keys_close_everything_but_the_probes(secure):
    assert secure.call("GET", "/health").status == 200 and secure.call("GET", "/ready").status == 200
    missing = secure.predict(key=None)
    assert missing.status == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {"detail": 'missing API key: send the header "Authorization: Bearer KEY"'}
    wrong = secure.predict(key=WRONG_KEY)
    assert wrong.status == 401 and wrong.json() == {"detail": "invalid API key"}
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    for header in (f"Basic {KEY}", "Bearer", f"Bearer {KEY}x", "Bearer " + "k" * 5000):
        assert secure.call("POST", "/predict", {"text": "a"}, {"Authorization": header}).status == 401, header
    for path in ("/info", "/metrics", "/openapi.json", "/docs", "/no-such-path"):
        assert secure.call("GET", path).status == 401, path
    assert secure.call("GET", "/info", headers={"Authorization": f"bearer {OTHER_KEY}"}).status == 200
    for key in (KEY, OTHER_KEY):
        answer = secure.predict(key=key)
        assert answer.status == 200 and [set(p) for p in answer.json()] == [{"label", "score", "scores"}] * 2


def test_https_only_with_a_trusted_certificate_and_under_load(secure):
    plain = http.client.HTTPConnection("127.0.0.1", secure.port, timeout=10)
    with pytest.raises((OSError, http.client.HTTPException)):
        plain.request("GET", "/health")
        plain.getresponse().read()
    untrusting = http.client.HTTPSConnection("127.0.0.1", secure.port, timeout=10,
                                             context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.request("GET", "/health")
    report = run_load("127.0.0.1", secure.port, TEXTS, requests=300, concurrency=8, bad_every=10,
                      headers={"Authorization": f"Bearer {KEY}"}, tls=secure.tls)
    assert report.errors == [] and report.dropped == 0 and report.refused_as_expected == 30


def test_every_answer_carries_a_request_id(secure):
    kept = "proxy-7.abc:DEF_9"
    assert secure.predict(**{"X-Request-ID": kept}).headers["x-request-id"] == kept
    assert secure.predict(key=None, **{"X-Request-ID": kept}).headers["x-request-id"] == kept  # a 401 too
    for insane in ("x" * 65, "a b", "<script>", "é"):
        replaced = secure.call("GET", "/health", headers={"X-Request-ID": insane}).headers["x-request-id"]
        assert replaced != insane and len(replaced) == 32 and int(replaced, 16) >= 0
    fresh = {secure.call("GET", "/no-such-path").headers["x-request-id"] for _ in range(3)}
    assert len(fresh) == 3 and all(len(rid) == 32 for rid in fresh)


def test_json_access_log_has_each_request_and_no_secret(secure):
    ids = {name: f"log-test-{name}-{secrets.token_hex(4)}" for name in ("ok", "wrong", "bad")}
    assert secure.predict(**{"X-Request-ID": ids["ok"]}).status == 200
    assert secure.predict(key=WRONG_KEY, **{"X-Request-ID": ids["wrong"]}).status == 401
    bad = secure.call("POST", "/predict", {"texts": [SECRET_TEXT], "top_k": 1},
                      {"Authorization": f"Bearer {OTHER_KEY}", "X-Request-ID": ids["bad"]})
    assert bad.status == 422
    log = secure.log.read_text()
    lines = {entry["request_id"]: entry for entry in map(json.loads, filter(None, (
        line for line in log.splitlines() if line.startswith("{"))))}
    assert set(lines[ids["ok"]]) == {"time", "request_id", "method", "path", "status", "duration_ms", "client",
                                     "texts"}
    assert lines[ids["ok"]]["method"] == "POST" and lines[ids["ok"]]["path"] == "/predict"
    assert lines[ids["ok"]]["status"] == 200 and lines[ids["ok"]]["texts"] == 2
    assert lines[ids["ok"]]["client"].startswith("127.0.0.1:") and lines[ids["ok"]]["duration_ms"] >= 0
    assert lines[ids["wrong"]]["status"] == 401 and lines[ids["wrong"]]["texts"] is None
    assert lines[ids["bad"]]["status"] == 422
    for secret in (KEY, OTHER_KEY, WRONG_KEY, "Bearer", "uthorization", SECRET_TEXT):
        assert secret not in log, secret
    assert "Traceback" not in log and "2 API key(s)" in log


def metric_samples(server: Server) -> dict[tuple[str, tuple], float]:
    text = server.call("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"}).body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_metrics(secure):
    before = metric_samples(secure)
    for _ in range(5):
        assert secure.predict().status == 200
    assert secure.predict(key=WRONG_KEY).status == 401
    after = metric_samples(secure)
    assert after[PREDICT_OK] - before.get(PREDICT_OK, 0) == 5
    assert after[("finetext_requests_total", (("route", "/predict"), ("status", "401")))] >= 1
    latency = ("finetext_request_duration_seconds_count", (("route", "/predict"),))
    assert after[latency] - before.get(latency, 0) == 6
    assert after[("finetext_batch_texts_count", ())] >= 6  # the warm-up and a batch per request at least
    assert after[("finetext_batch_texts_bucket", (("le", "+Inf"),))] == after[("finetext_batch_texts_count", ())]
    assert after[("finetext_pending_texts", ())] == 0 and after[("finetext_model_load_seconds", ())] > 0


def test_ready_is_503_until_the_model_is_loaded_and_warm(secure):
    assert secure.probes[-1][1] == 200 and {ready for _, ready, _ in secure.probes} <= {200, 503}
    loading = [(health, body) for health, ready, body in secure.probes if ready == 503]
    assert loading, "the server answered its probes only once ready"  # it serves them before torch is imported
    assert all(health == 200 and body["status"] == "loading" for health, body in loading)


def test_before_the_model_is_loaded_only_the_probes_answer(model_dir):
    app = create_app(model_dir, ServeConfig(precision="fp32", backend="pytorch", access_log=False),
                     background=True)
    client = TestClient(app)  # not started: the model is not loaded
    assert client.get("/health").json()["ready"] is False
    assert client.get("/ready").status_code == 503 and client.get("/ready").headers["retry-after"] == "1"
    for answer in (client.post("/predict", json={"text": "a"}), client.get("/info")):
        assert answer.status_code == 503 and answer.json()["detail"] == "the model is loading; retry shortly"
    with TestClient(app) as started:
        for _ in range(600):
            if started.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert started.get("/ready").json() == {"status": "ready"}
        assert started.post("/predict", json={"text": "a"}).status_code == 200
        assert started.get("/health").json()["batches"] >= 2  # the warm-up, then the request


def test_sigterm_answers_every_request_sent_before_it_then_exits_0(model_dir, tmp_path):
    server = start(model_dir, tmp_path, "--drain-timeout-s", "30")
    report = LoadReport()
    load = LoadTest("127.0.0.1", server.port, TEXTS, timeout_s=30)
    clients = threading.Thread(target=load.run, args=(2000, 16, report), daemon=True)
    clients.start()
    while len(report.answers) < 300 and clients.is_alive():
        time.sleep(0.01)
    signalled = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    clients.join(timeout=120)
    before = [status for sent, status in list(report.answers) if sent < signalled]
    assert len(before) >= 300 and [s for s in before if s != 200] == []
    assert report.dropped > 0  # after the signal the server took no new request, and then it was gone
    assert "Traceback" not in server.log.read_text()


def test_workers_share_the_port_each_with_its_own_model(model_dir, tmp_path):
    server = start(model_dir, tmp_path, "--workers", "2", "--log-format", "text")
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while loaded_workers("127.0.0.1", server.port) < 2:
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        pids = worker_pids(server.process.pid)
        assert len(pids) == 2
        print("RSS per worker (MB):", {pid: rss_mb(pid) for pid in pids}, "parent:", rss_mb(server.process.pid))
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            assert server.predict(key=None).status == 200
        report = run_load("127.0.0.1", server.port, TEXTS, requests=200, concurrency=8)
        assert report.errors == [] and len(report.latencies_ms) == 200
        # A worker counts and logs a request right after answering it: poll until the last ones are in.
        for _ in range(100):
            samples = metric_samples(server)
            lines = [line for line in server.log.read_text().splitlines() if '"POST /predict" 200' in line]
            if samples.get(PREDICT_OK) == 240 and len(lines) == 240:
                break
            time.sleep(0.1)
        assert samples[PREDICT_OK] == 240  # both workers' counts, added up
        loaded = {dict(labels)["pid"] for name, labels in samples if name == "finetext_model_load_seconds"}
        assert loaded == {str(pid) for pid in pids}
        assert len(lines) == 240 and all("request_id=" in line for line in lines)
        assert sum("texts=2" in line for line in lines) == 40 and sum("texts=1" in line for line in lines) == 200
    finally:
        code = server.stop()
    assert code == 0 and not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_network_address_without_keys_is_refused(model_dir):
    result = subprocess.run([sys.executable, "-m", "finetext", "serve", model_dir, "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "--host 0.0.0.0 opens the server to the network without authentication" in result.stderr
    assert "--api-key-file" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert ServeConfig(host="0.0.0.0", allow_unauthenticated=True).api_keys.digests == ()


@pytest.mark.parametrize(("flags", "message"), [
    (["--api-key-file", "{tmp}/missing.txt"], "API key file not found"),
    (["--api-key-file", "{tmp}/comments.txt"], "holds no key (only blank lines or # comments)"),
    (["--api-key-file", "{tmp}/short.txt"], "line 2: an API key needs 16 to 256 characters, this one has 5"),
    (["--ssl-certfile", "{tmp}/cert.pem"], "--ssl-certfile and --ssl-keyfile go together"),
    (["--ssl-certfile", "{tmp}/garbage.pem", "--ssl-keyfile", "{tmp}/garbage.pem"], "cannot serve HTTPS with"),
    (["--workers", "0"], "workers must be between 1 and 64"),
    (["--drain-timeout-s", "0"], "drain-timeout-s must be > 0"),
    (["--log-format", "xml"], "log-format must be text or json"),
])
def test_bad_settings_are_one_error_line(model_dir, tmp_path, capsys, flags, message):
    (tmp_path / "comments.txt").write_text("# no key yet\n\n")
    (tmp_path / "short.txt").write_text("# one key\nshort\n")
    (tmp_path / "cert.pem").write_text("unused")
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    argv = ["serve", model_dir, "--port", str(free_port()), *(f.format(tmp=tmp_path) for f in flags)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "short\n" not in err


def test_a_key_is_compared_with_every_key(monkeypatch, tmp_path):
    (tmp_path / "keys").write_text(f"{KEY}\n# comment\n{OTHER_KEY}\n")
    monkeypatch.setenv(auth.API_KEYS_ENV, f" {WRONG_KEY} ,")
    keys = ServeConfig(api_key_file=str(tmp_path / "keys")).api_keys
    assert len(keys) == 3
    calls = []
    compare = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or compare(a, b))
    for presented, accepted in ((KEY, True), (WRONG_KEY, True), ("x" * 20, False), ("", False)):
        calls.clear()
        assert keys.accepts(presented) is accepted and len(calls) == 3  # no early exit on a match
