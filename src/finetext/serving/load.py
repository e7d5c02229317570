"""A bounded load test for `finetext serve`: N requests from C concurrent keep-alive clients on loopback,
with malformed requests mixed in, each of which must get its 4xx while the good ones all get 200.

Used by tests/test_serving.py, tests/test_serve_ops.py and bench/serve_load.py. It only ever talks to the host
it is given, which callers keep on 127.0.0.1; with `headers` (an API key) and `tls` (a client SSL context) it
loads a server that has authentication and HTTPS on.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Malformed requests, each with the status it must get: (name, body, content type, expected status).
BAD_REQUESTS: list[tuple[str, bytes, str, int]] = [
    ("malformed JSON", b'{"texts": ["unterminated', "application/json", 400),
    ("wrong type", b'{"texts": [1, 2, 3]}', "application/json", 422),
    ("empty list", b'{"texts": []}', "application/json", 422),
    ("not an object", b'["a", "b"]', "application/json", 422),
    ("unknown key", b'{"texts": ["fine"], "top_k": 3}', "application/json", 422),
    ("not JSON", b"texts=a", "application/x-www-form-urlencoded", 415),
]


@dataclass
class LoadReport:
    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    """Of the well-formed requests answered 200."""
    errors: list[str] = field(default_factory=list)
    """Unexpected answers: a good request not answered 200, a bad one not answered its 4xx."""
    dropped: int = 0
    """Requests that got no answer at all (connection error or timeout)."""
    refused: dict[str, int] = field(default_factory=dict)
    """Malformed requests answered with exactly their expected 4xx, by kind (BAD_REQUESTS' names)."""
    answers: list[tuple[float, int | None]] = field(default_factory=list)
    """(when the request was fully sent, time.perf_counter(); its status, None without an answer) of every
    request that was sent."""

    @property
    def refused_as_expected(self) -> int:
        return sum(self.refused.values())

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 2),
                "requests_per_second": round(self.requests / max(self.seconds, 1e-9), 1),
                "p50_ms": round(self.percentile(50), 1), "p95_ms": round(self.percentile(95), 1),
                "p99_ms": round(self.percentile(99), 1), "errors": len(self.errors), "dropped": self.dropped,
                "bad_requests_refused": self.refused_as_expected}


def run_load(host: str, port: int, texts: list[str], requests: int = 2000, concurrency: int = 16,
             texts_per_request: int = 1, bad_every: int = 0, timeout_s: float = 60.0,
             headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None) -> LoadReport:
    """Send `requests` requests from `concurrency` threads; every `bad_every`-th one (0: none) is malformed."""
    return LoadTest(host, port, texts, texts_per_request, bad_every, timeout_s, headers or {}, tls).run(
        requests, concurrency)


@dataclass
class LoadTest:
    host: str
    port: int
    texts: list[str]
    texts_per_request: int = 1
    bad_every: int = 0
    timeout_s: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every request (e.g. Authorization)."""
    tls: ssl.SSLContext | None = None
    """HTTPS with this client context; plain HTTP without."""

    def run(self, requests: int, concurrency: int, report: LoadReport | None = None) -> LoadReport:
        """The report of the run; pass one to watch it fill while the run goes on (from another thread)."""
        report, lock = report or LoadReport(), threading.Lock()
        report.requests = requests
        indices = iter(range(requests))

        def client() -> None:
            conn = self.connect()
            while (index := next_index(indices, lock)) is not None:
                conn = self.send(conn, index, report, lock)
            conn.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout_s * requests)  # bounded even if the server stops answering
        report.seconds = time.perf_counter() - started
        return report

    def connect(self) -> http.client.HTTPConnection:
        return connection(self.host, self.port, self.timeout_s, self.tls)

    def request(self, index: int) -> tuple[str, bytes, str, int]:
        """(name, body, content type, expected status) of request number index."""
        if self.bad_every and index % self.bad_every == 0:
            return BAD_REQUESTS[(index // self.bad_every) % len(BAD_REQUESTS)]
        chosen = [self.texts[(index * self.texts_per_request + k) % len(self.texts)]
                  for k in range(self.texts_per_request)]
        return "predict", json.dumps({"texts": chosen}).encode(), "application/json", 200

    def send(self, conn: http.client.HTTPConnection, index: int, report: LoadReport,
             lock: threading.Lock) -> http.client.HTTPConnection:
        """One request and its bookkeeping; the connection to use next (a new one after a failure or close)."""
        name, body, content_type, expected = self.request(index)
        started = sent = time.perf_counter()
        try:
            conn.request("POST", "/predict", body=body, headers={**self.headers, "Content-Type": content_type})
            sent = time.perf_counter()
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            with lock:
                report.dropped += 1
                report.errors.append(f"request {index} ({name}): no answer: {exc!r}")
                if sent > started:
                    report.answers.append((sent, None))
            conn.close()
            return self.connect()
        elapsed_ms = 1000 * (time.perf_counter() - started)
        with lock:
            report.answers.append((sent, response.status))
            if response.status != expected:
                report.errors.append(f"request {index} ({name}): {response.status} {payload[:200]!r}, "
                                     f"expected {expected}")
            elif expected == 200:
                report.latencies_ms.append(elapsed_ms)
            else:
                report.refused[name] = report.refused.get(name, 0) + 1
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            return self.connect()
        return conn


def next_index(indices, lock: threading.Lock) -> int | None:
    with lock:
        return next(indices, None)


def connection(host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None = None
               ) -> http.client.HTTPConnection:
    if tls is not None:
        return http.client.HTTPSConnection(host, port, timeout=timeout_s, context=tls)
    return http.client.HTTPConnection(host, port, timeout=timeout_s)


def oversized_body_status(host: str, port: int, declared_bytes: int = 50_000_000, timeout_s: float = 10.0,
                          headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None) -> int:
    """Declare a huge body, send only its first 64 KB, and return the status the server answers with (it
    must refuse on the Content-Length alone, without waiting for the rest)."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
                     f"Content-Length: {declared_bytes}\r\n\r\n".encode() + b" " * 65536)
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


def wait_until_healthy(host: str, port: int, timeout_s: float = 120.0, tls: ssl.SSLContext | None = None) -> None:
    """Poll GET /ready until it answers 200: the server answers /health at once, but /ready (and /predict) only
    once its model is loaded and warmed up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = connection(host, port, 5, tls)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no ready server on {host}:{port} after {timeout_s:g} s")
        time.sleep(0.2)


def loaded_workers(host: str, port: int, headers: dict[str, str] | None = None,
                   tls: ssl.SSLContext | None = None) -> int:
    """How many server processes have loaded their model, from GET /metrics (one finetext_model_load_seconds
    sample per worker with --workers, one in all without)."""
    conn = connection(host, port, 10, tls)
    conn.request("GET", "/metrics", headers=headers or {})
    response = conn.getresponse()
    text = response.read().decode()
    if response.status != 200:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("finetext_model_load_seconds")
               and float(line.rsplit(" ", 1)[1]) > 0)


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files of a new self-signed certificate for host and localhost, valid for a day: for
    tests and benchmarks of HTTPS. Uses the cryptography package, or the openssl command without it."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        f"/CN={host}", "-addext", f"subjectAltName=IP:{host},DNS:localhost", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True)
        return cert, key
    cert.write_bytes(_cryptography_certificate(host, key))
    return cert, key


def _cryptography_certificate(host: str, key_path: Path) -> bytes:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    names = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)).add_extension(names, critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def client_context(certificate: Path) -> ssl.SSLContext:
    """A client SSL context that trusts certificate (and checks the host name against it)."""
    return ssl.create_default_context(cafile=str(certificate))


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under parent (multiprocessing's spawn), not its resource tracker (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux /proc); NaN when it does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return float("nan")
