"""`finetext serve`: bind the port, check what can be checked cheaply, then run uvicorn, in this process or in
--workers processes sharing the port.

The port answers /health and /ready while the model loads in the background (/ready says 503 until it is loaded
and warmed up). SIGTERM or Ctrl-C stops the server gracefully: no new connection is accepted, the requests already
received are answered (for at most --drain-timeout-s), and the process exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict

from finetext.artifacts import open_artifact
from finetext.errors import FinetextError
from finetext.serving.drain import DrainingH11Protocol, Supervisor
from finetext.serving.metrics import MULTIPROCESS_ENV
from finetext.serving.settings import ServeConfig
from finetext.serving.worker import MODEL_DIR_ENV, SETTINGS_ENV

log = logging.getLogger("finetext")


def serve(model_dir: str, cfg: ServeConfig) -> None:
    """Bind the port (a clear error if it is taken), check the model directory and the certificate, then serve
    until SIGTERM or Ctrl-C."""
    sock = bind(cfg.host, cfg.port)  # first: a taken port fails at once, not after loading the model
    try:
        open_artifact(model_dir)  # a missing or unfinished model: one error line, before anything starts
        check_certificate(cfg)
    except BaseException:
        sock.close()
        raise
    keys = f"{len(cfg.api_keys)} API key(s)" if cfg.api_keys else "no authentication"
    log.info("serving %s on %s://%s:%d with %d worker(s), %s (POST /predict, GET /health, /ready, /info, /metrics, "
             "/openapi.json)", model_dir, cfg.scheme, cfg.host, cfg.port, cfg.workers, keys)
    if cfg.workers == 1:
        serve_here(model_dir, cfg, sock)
    else:
        serve_in_workers(model_dir, cfg, sock)


def uvicorn_settings(cfg: ServeConfig) -> dict:
    return {"log_level": "warning", "access_log": False, "timeout_keep_alive": 30, "limit_concurrency": 1024,
            "timeout_graceful_shutdown": cfg.drain_timeout_s, "http": DrainingH11Protocol, "lifespan": "on",
            "ssl_certfile": cfg.ssl_certfile or None, "ssl_keyfile": cfg.ssl_keyfile or None}


def serve_here(model_dir: str, cfg: ServeConfig, sock: socket.socket) -> None:
    import uvicorn

    from finetext.serving.app import create_app

    failures: list[BaseException] = []

    def stop(exc: BaseException) -> None:
        failures.append(exc)
        server.should_exit = True

    app = create_app(model_dir, cfg, background=True, on_failure=stop)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_settings(cfg)))
    with exit_zero_after(server):
        server.run(sockets=[sock])
    if failures:
        raise failures[0]


@contextlib.contextmanager
def exit_zero_after(server) -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it to the handler it found, once it has shut down; the default
    handler would end the process by that signal. This one asks the server to stop (which also covers a signal
    arriving before uvicorn installs its own) and lets a graceful stop return normally."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: setattr(server, "should_exit", True)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_in_workers(model_dir: str, cfg: ServeConfig, sock: socket.socket) -> None:
    """cfg.workers processes, each with its own model, accepting on sock; their metrics are added up through
    PROMETHEUS_MULTIPROC_DIR."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    metrics_dir = tempfile.mkdtemp(prefix="finetext-metrics-")
    env = {MODEL_DIR_ENV: str(model_dir), SETTINGS_ENV: json.dumps(asdict(cfg)), MULTIPROCESS_ENV: metrics_dir}
    try:
        with environment(env):  # spawned workers inherit it
            config = uvicorn.Config("finetext.serving.worker:app_from_env", factory=True, workers=cfg.workers,
                                    **uvicorn_settings(cfg))
            supervisor = Supervisor(config, sockets=[sock])
            supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise FinetextError("a worker could not load the model (its error is above).",
                            "Fix the model directory, or run with --workers 1 to see the whole error.")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_certificate(cfg: ServeConfig) -> None:
    """Load the certificate and key once here: a bad pair is one error line, not a traceback from each worker.
    An encrypted key is refused (no passphrase prompt on a server's terminal)."""
    if not cfg.ssl_certfile:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile, password=lambda: "")
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise FinetextError(f"cannot serve HTTPS with --ssl-certfile {cfg.ssl_certfile} and --ssl-keyfile "
                            f"{cfg.ssl_keyfile}: {reason}.",
                            "Give a PEM certificate and its unencrypted PEM private key.") from None


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        raise FinetextError(f"cannot listen on {host}:{port}: {exc.strerror}.",
                            "Pass another --port (or --host), or stop what uses it.") from None
    sock.set_inheritable(True)
    return sock
