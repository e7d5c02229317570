"""An ASGI middleware that bounds request bodies before FastAPI parses them.

A body over the limit is refused with 413 on its declared Content-Length before a byte of it is read, or
as soon as a chunked body passes the limit (the connection is then closed); a POST whose Content-Type is
not JSON gets 415. The accepted body is
buffered (it is at most max_body_bytes) and handed on unchanged.
"""

from __future__ import annotations

import json
from typing import Any


class RequestGuard:
    def __init__(self, app: Any, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return await self.refuse(send, 413, self.too_large())
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await self.refuse(send, 413, self.too_large())
            if not message.get("more_body", False):
                break
        # Checked after reading the (bounded) body: closing on an unread body would reset the connection
        # before the client reads the answer.
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
            return await self.refuse(send, 415, f"the body must be JSON (Content-Type: application/json), "
                                                f"got {content_type}", close=False)
        return await self.app(scope, replay(bytes(body), receive), send)

    def too_large(self) -> str:
        return f"request body over {self.max_body_bytes} bytes: send fewer or shorter texts per request"

    @staticmethod
    async def refuse(send: Any, status: int, message: str, close: bool = True,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer without calling the app; close the connection when part of the body is left unread."""
        payload = json.dumps({"detail": message}).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                *(headers or [])]
        await send({"type": "http.response.start", "status": status,
                    "headers": head + ([(b"connection", b"close")] if close else [])})
        await send({"type": "http.response.body", "body": payload})


def replay(body: bytes, receive: Any):
    """A receive() that yields the buffered body once, then waits on the real one (for disconnects)."""
    sent = False

    async def receive_again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
