"""Is the Hugging Face Hub reachable? Asked once, before any download, so offline runs fail in a second."""

from __future__ import annotations

import logging
import os
import socket
from functools import cache
from urllib.parse import urlparse


@cache
def hub_unreachable_reason(endpoint: str | None = None) -> str | None:
    """None when the Hub (endpoint, default huggingface_hub's ENDPOINT) accepts a connection; otherwise why not
    (offline mode, or no connection). Asked once per endpoint."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    url = urlparse(endpoint or constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return f"cannot connect to {host} ({exc.strerror or type(exc).__name__})"
    return None


def quiet_hub_logs() -> None:
    """huggingface_hub logs every retry as a warning; finetext reports a failure once, itself."""
    for name in ("huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
