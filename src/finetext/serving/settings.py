"""The settings of `finetext serve`: one docstring per field, the source of the CLI flags and docs."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from finetext.errors import FinetextError
from finetext.serving.auth import API_KEYS_ENV, load_api_keys

BACKEND_CHOICES = ("auto", "pytorch", "onnxruntime")
LOG_FORMATS = ("text", "json")
MAX_WORKERS = 64


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    """Address to listen on. The default answers this machine only; 0.0.0.0 opens it to the network."""
    port: int = 8000
    """TCP port to listen on."""
    precision: str = "auto"
    """auto (bfloat16 autocast or fp32, whichever measured faster for this model when the server started;
    cached per machine), fp32 (exactly the evaluation's probabilities) or bf16."""
    backend: str = "auto"
    """auto (with precision auto: onnxruntime instead of PyTorch where it measured faster for this model here;
    the ONNX copy is exported to the cache once), pytorch, or onnxruntime (a training directory's cached ONNX
    copy). A directory written by finetext export always runs in onnxruntime."""
    max_batch_size: int = 32
    """Most texts the model sees in one forward pass. Concurrent requests are pooled up to this size."""
    max_wait_ms: float = 5.0
    """How long a request waits for others to join its batch when the model is idle (0: never waits)."""
    max_texts: int = 64
    """Most texts in one request; a longer list is refused with 422."""
    max_chars: int = 20_000
    """Most characters in one text; a longer text is refused with 422 (the model reads only its first
    max_length tokens anyway, about 2,000-4,000 characters at 512 tokens)."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body accepted; a larger one is refused with 413 before it is read."""
    max_pending_texts: int = 4096
    """Texts waiting for the model across all requests; beyond it new requests get 503 with Retry-After."""
    request_timeout_s: float = 60.0
    """A request not answered in this time gets 503 instead of waiting on."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model (needed only by custom architectures). Off by default."""
    api_key_file: str = ""
    """File of API keys, one per line (blank lines and # comments skipped; FINETEXT_API_KEYS adds comma-separated
    ones). With keys, every request but GET /health and GET /ready needs `Authorization: Bearer KEY`."""
    allow_unauthenticated: bool = False
    """Serve a --host other than loopback without API keys (only behind a proxy that authenticates)."""
    ssl_certfile: str = ""
    """PEM certificate (chain) to serve HTTPS with; needs --ssl-keyfile."""
    ssl_keyfile: str = ""
    """Unencrypted PEM private key of --ssl-certfile."""
    workers: int = 1
    """Server processes sharing the port, each with its own copy of the model."""
    drain_timeout_s: float = 30.0
    """On SIGTERM or Ctrl-C: stop accepting, answer the requests already received for at most this long, exit 0."""
    access_log: bool = True
    """One line per request on stderr (time, request id, method, path, status, duration, client, texts)."""
    log_format: str = "text"
    """Access log lines as text or json (one JSON object per line)."""

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise FinetextError(f"precision must be auto, fp32 or bf16, got {self.precision!r}.")
        if self.backend not in BACKEND_CHOICES:
            raise FinetextError(f"backend must be {', '.join(BACKEND_CHOICES)}, got {self.backend!r}.")
        if not 0 < self.port < 65536:
            raise FinetextError(f"port must be between 1 and 65535, got {self.port}.")
        for name in ("max_batch_size", "max_texts", "max_chars", "max_body_bytes", "max_pending_texts"):
            if getattr(self, name) < 1:
                raise FinetextError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}.")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise FinetextError("max-wait-ms must be >= 0 and request-timeout-s > 0.")
        self.check_network_settings()
        if self.max_pending_texts < self.max_texts:
            raise FinetextError(f"max-pending-texts ({self.max_pending_texts}) is below max-texts "
                                f"({self.max_texts}): no full request could ever be queued.",
                                "Raise --max-pending-texts or lower --max-texts.")

    def check_network_settings(self) -> None:
        """Workers, drain, log format and TLS files; the API keys, read now (self.api_keys keeps their digests);
        no keys on an address other than loopback is refused unless allow_unauthenticated says so."""
        if not 1 <= self.workers <= MAX_WORKERS:
            raise FinetextError(f"workers must be between 1 and {MAX_WORKERS}, got {self.workers}.")
        if not self.drain_timeout_s > 0:
            raise FinetextError(f"drain-timeout-s must be > 0, got {self.drain_timeout_s}.")
        if self.log_format not in LOG_FORMATS:
            raise FinetextError(f"log-format must be {' or '.join(LOG_FORMATS)}, got {self.log_format!r}.")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise FinetextError("--ssl-certfile and --ssl-keyfile go together: HTTPS needs a certificate and its key.",
                                "Give both, or neither for plain HTTP.")
        for flag, path in (("ssl-certfile", self.ssl_certfile), ("ssl-keyfile", self.ssl_keyfile)):
            if path and not Path(path).expanduser().is_file():
                raise FinetextError(f"--{flag} file not found: {path}.", "Pass an existing PEM file.")
        self.api_keys = load_api_keys(self.api_key_file, os.environ.get(API_KEYS_ENV, ""))
        if not self.api_keys and not self.allow_unauthenticated and not is_loopback(self.host):
            raise FinetextError(f"--host {self.host} opens the server to the network without authentication.",
                                f"Give --api-key-file FILE (or set {API_KEYS_ENV}), or pass --allow-unauthenticated "
                                "if a proxy in front authenticates.")

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    def limits(self) -> dict[str, int]:
        """The input bounds a client must respect (served by GET /info)."""
        return {"max_texts": self.max_texts, "max_chars": self.max_chars, "max_body_bytes": self.max_body_bytes}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything
