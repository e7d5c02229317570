"""Load test of `finetext serve`: requests/s, p50/p95/p99 latency and error count, batching on and off.

Each configuration starts its own `finetext serve MODEL_DIR` process on 127.0.0.1, warms it up, then sends
--requests requests from --concurrency keep-alive clients (every 10th one malformed: bad JSON, wrong types,
an empty list, ...; each must get its 4xx) and stops it. The baseline, `unbatched`, runs the model once per
request (--max-batch-size 1); `batched` is the default server (pools concurrent requests, up to 32 texts).

    make demo   # trains outputs/demo (MiniLM on SST-2), the default model here
    .venv/bin/python bench/serve_load.py outputs/demo --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
from common import data_dir, print_machine

from finetext.serving.load import oversized_body_status, run_load, wait_until_healthy

CONFIGS = {
    "unbatched": ["--max-batch-size", "1", "--max-wait-ms", "0"],
    "batched": [],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(model_dir: str, name: str, texts: list[str], args: argparse.Namespace) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "finetext", "serve", model_dir, "--port", str(port),
                               "--precision", args.precision, *CONFIGS[name]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_healthy("127.0.0.1", port, timeout_s=300)
        run_load("127.0.0.1", port, texts, requests=64, concurrency=args.concurrency)  # warm-up
        report = run_load("127.0.0.1", port, texts, requests=args.requests, concurrency=args.concurrency,
                          texts_per_request=args.texts_per_request, bad_every=args.bad_every)
        summary = {"config": name, **report.summary(), "oversized_body_status": oversized_body_status("127.0.0.1",
                                                                                                       port)}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            health = json.loads(answer.read())
        summary["mean_batch_texts"] = round(health["texts_predicted"] / max(1, health["batches"]), 1)
        for line in report.errors[:5]:
            print(f"  {name}: {line}")
        return summary
    finally:
        server.terminate()
        server.wait(timeout=60)


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
    for name in args.configs.split(","):
        started = time.perf_counter()
        rows.append(measure(args.model_dir, name, texts, args))
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    base = rows[0]["requests_per_second"]
    for row in rows:
        row["speedup"] = round(row["requests_per_second"] / base, 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.requests} requests ({args.texts_per_request} {args.dataset} text(s) each, every {args.bad_every}th "
          f"malformed), {args.concurrency} concurrent clients, precision {args.precision}")
    print("| config | requests/s | speedup | p50 ms | p95 ms | p99 ms | errors | dropped | bad refused | "
          "mean batch | oversized body |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['requests_per_second']} | {r['speedup']}x | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['p99_ms']} | {r['errors']} | {r['dropped']} | {r['bad_requests_refused']} | "
              f"{r['mean_batch_texts']} | {r['oversized_body_status']} |")


if __name__ == "__main__":
    main()
