"""The settings of `finetext serve`: one docstring per field, the source of the CLI flags and docs."""

from __future__ import annotations

from dataclasses import dataclass

from finetext.errors import FinetextError

BACKEND_CHOICES = ("auto", "pytorch", "onnxruntime")


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
        if self.max_pending_texts < self.max_texts:
            raise FinetextError(f"max-pending-texts ({self.max_pending_texts}) is below max-texts "
                                f"({self.max_texts}): no full request could ever be queued.",
                                "Raise --max-pending-texts or lower --max-texts.")

    def limits(self) -> dict[str, int]:
        """The input bounds a client must respect (served by GET /info)."""
        return {"max_texts": self.max_texts, "max_chars": self.max_chars, "max_body_bytes": self.max_body_bytes}
