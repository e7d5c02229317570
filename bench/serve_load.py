"""Load test of `finetext serve`: requests/s, p50/p95/p99 latency and error count, batching on and off,
API keys on and off, HTTPS, several workers (and each worker's memory).

Each configuration starts its own `finetext serve MODEL_DIR` process on 127.0.0.1, waits until GET /ready, warms
it up, then sends --requests requests from --concurrency keep-alive clients (every 10th one malformed: bad JSON,
wrong types, an empty list, ...; each must get its 4xx) and stops it with SIGTERM (it must exit 0). The baseline,
`unbatched`, runs the model once per request (--max-batch-size 1); `batched` is the default server (pools
concurrent requests, up to 32 texts); `auth` is `batched` with an API key file (every request sends its key);
`tls` adds HTTPS (a self-signed certificate made for the run) to `auth`; `workers` is `auth` with --workers 2.
The RSS column is the server process's resident memory after the run, or each worker's with --workers.

    make demo   # trains outputs/demo (MiniLM on SST-2), the default model here
    .venv/bin/python bench/serve_load.py outputs/demo --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import pandas as pd
from common import data_dir, print_machine

from finetext.serving.auth import load_api_keys
from finetext.serving.load import (
    client_context,
    connection,
    loaded_workers,
    oversized_body_status,
    rss_mb,
    run_load,
    self_signed_certificate,
    wait_until_healthy,
    worker_pids,
)

CONFIGS = {
    "unbatched": ["--max-batch-size", "1", "--max-wait-ms", "0"],
    "batched": [],
    "auth": ["--api-key-file", "{keys}"],
    "tls": ["--api-key-file", "{keys}", "--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}"],
    "workers": ["--api-key-file", "{keys}", "--workers", "2"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Secrets:
    """An API key file and a self-signed certificate for the run, in a temporary folder."""

    def __init__(self, folder: Path):
        self.key = secrets.token_urlsafe(32)
        self.keys = folder / "api-keys.txt"
        self.keys.write_text(f"# bench key\n{self.key}\n")
        self.cert, self.cert_key = self_signed_certificate(folder)
        self.folder = folder

    def flags(self, name: str) -> list[str]:
        return [a.format(keys=self.keys, cert=self.cert, key=self.cert_key) for a in CONFIGS[name]]

    def client(self, name: str) -> tuple[dict[str, str], object]:
        headers = {"Authorization": f"Bearer {self.key}"} if "{keys}" in CONFIGS[name] else {}
        return headers, client_context(self.cert) if "{cert}" in CONFIGS[name] else None


def measure(model_dir: str, name: str, texts: list[str], args: argparse.Namespace, keys: Secrets) -> dict:
    port = free_port()
    log = keys.folder / f"{name}.log"
    headers, tls = keys.client(name)
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "finetext", "serve", model_dir, "--port", str(port),
                                   "--precision", args.precision, *keys.flags(name)],
                                  stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        wait_until_healthy("127.0.0.1", port, timeout_s=300, tls=tls)
        if name == "workers":
            wait_for_workers(port, 2, headers, tls)
        run_load("127.0.0.1", port, texts, requests=64, concurrency=args.concurrency, headers=headers, tls=tls)
        report = run_load("127.0.0.1", port, texts, requests=args.requests, concurrency=args.concurrency,
                          texts_per_request=args.texts_per_request, bad_every=args.bad_every, headers=headers, tls=tls)
        summary = {"config": name, **report.summary(),
                   "oversized_body_status": oversized_body_status("127.0.0.1", port, headers=headers, tls=tls)}
        conn = connection("127.0.0.1", port, 10, tls)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        summary["mean_batch_texts"] = round(health["texts_predicted"] / max(1, health["batches"]), 1)
        summary["rss_mb"] = [rss_mb(pid) for pid in worker_pids(server.pid)] or [rss_mb(server.pid)]
        for line in report.errors[:5]:
            print(f"  {name}: {line}")
        server.send_signal(signal.SIGTERM)
        summary["exit_code"] = server.wait(timeout=60)
        return summary
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def wait_for_workers(port: int, count: int, headers: dict[str, str], tls, timeout_s: float = 300) -> None:
    """Until count workers have loaded their model (GET /metrics adds up every worker's)."""
    deadline = time.monotonic() + timeout_s
    while loaded_workers("127.0.0.1", port, headers, tls) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} workers did not load their model in {timeout_s:g} s")
        time.sleep(0.5)


def key_check_microseconds() -> dict[str, float]:
    """What checking a request's key costs in the server: the hash and the comparisons with every key."""
    times = {}
    for count in (1, 100):
        keys = load_api_keys("", ",".join(secrets.token_urlsafe(32) for _ in range(count)))
        presented = secrets.token_urlsafe(32)
        seconds = min(timeit.repeat(lambda k=keys, p=presented: k.accepts(p), number=2000, repeat=5)) / 2000
        times[f"{count}_keys"] = round(1e6 * seconds, 2)
    return times


def app_microseconds(model_dir: str, folder: Path) -> dict[str, float]:
    """CPU time of one GET /info through the whole app (every middleware, no network, no model), keys off and
    on: what authentication adds to a request, free of the load test's noise."""
    from finetext.serving.app import create_app
    from finetext.serving.settings import ServeConfig

    key = secrets.token_urlsafe(32)
    (folder / "one-key.txt").write_text(key + "\n")
    times = {}
    for name, key_file, headers in (("keys_off", "", []), ("keys_on", str(folder / "one-key.txt"),
                                                            [(b"authorization", f"Bearer {key}".encode())])):
        app = create_app(model_dir, ServeConfig(precision="fp32", backend="pytorch", access_log=False,
                                                api_key_file=key_file))
        app.state.slot.ready = True  # the route answers without the warm-up, which needs the app running
        times[name] = round(1e6 * asyncio.run(time_requests(app, headers)), 1)
    return times


async def time_requests(app, headers: list[tuple[bytes, bytes]], count: int = 3000) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    def scope() -> dict:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                "path": "/info", "raw_path": b"/info", "root_path": "", "query_string": b"", "headers": headers,
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {}}

    for _ in range(300):
        await app(scope(), receive, send)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            await app(scope(), receive, send)
        best = min(best, (time.perf_counter() - started) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", nargs="?", default="outputs/demo")
    parser.add_argument("--dataset", default="sst2", help="texts from ../shared/data/<dataset>/validation or test")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--bad-every", type=int, default=10, help="every N-th request is malformed (0: none)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print_machine(args)
    if not (Path(args.model_dir) / "config.json").is_file():
        raise SystemExit(f"no trained model in {args.model_dir}: run `make demo` first, or pass a model directory")
    folder = Path(data_dir()) / args.dataset
    split = next(p for p in (folder / "validation.parquet", folder / "test.parquet") if p.is_file())
    texts = pd.read_parquet(split)["text"].tolist()
    rows = []
    with tempfile.TemporaryDirectory(prefix="finetext-bench-") as tmp:
        keys = Secrets(Path(tmp))
        for name in args.configs.split(","):
            started = time.perf_counter()
            rows.append(measure(args.model_dir, name, texts, args, keys))
            print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    base = rows[0]["requests_per_second"]
    for row in rows:
        row["speedup"] = round(row["requests_per_second"] / base, 2)
    key_check = key_check_microseconds()
    with tempfile.TemporaryDirectory(prefix="finetext-bench-") as tmp:
        per_request = app_microseconds(args.model_dir, Path(tmp))
    if args.json:
        print(json.dumps({"configs": rows, "key_check_us": key_check, "app_us": per_request}, indent=2))
        return
    print(f"{args.requests} requests ({args.texts_per_request} {args.dataset} text(s) each, every {args.bad_every}th "
          f"malformed), {args.concurrency} concurrent clients, precision {args.precision}")
    print("| config | requests/s | speedup | p50 ms | p95 ms | p99 ms | errors | dropped | bad refused | "
          "mean batch | oversized body | exit on SIGTERM | RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['requests_per_second']} | {r['speedup']}x | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['p99_ms']} | {r['errors']} | {r['dropped']} | {r['bad_requests_refused']} | "
              f"{r['mean_batch_texts']} | {r['oversized_body_status']} | {r['exit_code']} | "
              f"{' + '.join(str(m) for m in r['rss_mb'])} |")
    print(f"API key check in the server (SHA-256 of the presented key, compare_digest with every key): "
          f"{key_check['1_keys']} µs with 1 key, {key_check['100_keys']} µs with 100 keys")
    print(f"One GET /info through the whole app (no network, no model): {per_request['keys_off']} µs without keys, "
          f"{per_request['keys_on']} µs with a key: authentication adds "
          f"{per_request['keys_on'] - per_request['keys_off']:.1f} µs per request")


if __name__ == "__main__":
    main()
