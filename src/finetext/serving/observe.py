"""The outermost layer of the server: gives every request an id, returned in X-Request-ID, and once it is
answered hands an Observation (id, method, path, status, duration, client, texts) to the access log and the
metrics.

An incoming X-Request-ID is kept when it is 1 to 64 characters of [A-Za-z0-9._:-] (a proxy's or a client's id,
so one id follows a request through several systems); anything else is replaced by a new uuid4 hex. Nothing of
the request's other headers or of its body is looked at.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
TEXTS_KEY = "finetext_texts"
"""Where a route leaves the number of texts it was given (in scope["state"], that is request.state)."""


@dataclass(frozen=True)
class Observation:
    time: float
    """When the request arrived (seconds since the epoch)."""
    request_id: str
    method: str
    path: str
    status: int
    seconds: float
    client: str
    texts: int | None


Observer = Callable[[Observation], None]


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    incoming = next((v for k, v in headers if k == REQUEST_ID_HEADER), b"")
    return incoming.decode("ascii") if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware; wraps the whole app (error handling included), so even a 500 carries the id."""

    def __init__(self, app: Any, observers: list[Observer]):
        self.app, self.observers = app, observers

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid, arrived, started = request_id(scope["headers"]), time.time(), time.perf_counter()
        status = 0
        scope.setdefault("state", {})

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not status:
                status = 500
                raise  # the server answers 500 itself
            # Starlette re-raises after its error handler answered (and logged it): that answer stands.
        finally:
            observation = Observation(arrived, rid, scope["method"], scope["path"], status or 500,
                                      time.perf_counter() - started, client_address(scope),
                                      scope["state"].get(TEXTS_KEY))
            for observe in self.observers:
                observe(observation)


def client_address(scope: dict) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
