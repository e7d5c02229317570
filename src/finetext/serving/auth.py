"""API keys for `finetext serve`: where they come from, how a request's key is checked, and the middleware that
answers 401 to a request without a valid one.

Keys come from --api-key-file (one per line; blank lines and # comments skipped) and from FINETEXT_API_KEYS
(comma-separated); both may be given. Only their SHA-256 digests are kept. A presented key is hashed and compared
with every known digest by hmac.compare_digest, without stopping at a match, so the time taken says nothing about
which key (or how much of one) matched. GET /health and GET /ready stay open for probes; every other path is closed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetext.errors import FinetextError
from finetext.serving.guard import RequestGuard

API_KEYS_ENV = "FINETEXT_API_KEYS"
OPEN_PATHS = frozenset({"/health", "/ready"})
MIN_KEY_CHARS, MAX_KEY_CHARS, MAX_KEYS = 16, 256, 1000
MAX_KEY_FILE_BYTES = 1024 * 1024
MAX_HEADER_CHARS = 7 + MAX_KEY_CHARS + 16  # "Bearer " plus the longest key, with some slack for spaces
KEY_SHAPE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it must fit an HTTP header unchanged
MAKE_ONE = "Make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'."


@dataclass(frozen=True)
class ApiKeys:
    digests: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def accepts(self, presented: str) -> bool:
        digest = _digest(presented)
        found = False
        for known in self.digests:  # every key, no early exit
            found |= hmac.compare_digest(digest, known)
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def load_api_keys(key_file: str, env_value: str) -> ApiKeys:
    """The keys of key_file (if given) and of env_value (FINETEXT_API_KEYS' value); FinetextError naming the line
    (never the key) when one is malformed, when the file is missing or holds no key."""
    keys = keys_from_file(Path(key_file).expanduser()) if key_file else []
    keys += [_checked(key.strip(), f"{API_KEYS_ENV}, key {n}") for n, key in enumerate(env_value.split(","), 1)
             if key.strip()]
    if len(keys) > MAX_KEYS:
        raise FinetextError(f"{len(keys)} API keys: at most {MAX_KEYS} are accepted.", "Remove the unused ones.")
    return ApiKeys(tuple(dict.fromkeys(_digest(key) for key in keys)))


def keys_from_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FinetextError(f"API key file not found: {path}.", "Pass an existing file to --api-key-file.")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise FinetextError(f"API key file {path} is over {MAX_KEY_FILE_BYTES} bytes.",
                            "Give a file of keys, one per line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FinetextError(f"cannot read the API key file {path}: {type(exc).__name__}.",
                            "Give a readable UTF-8 text file, one key per line.") from None
    keys = [_checked(line.strip(), f"{path}, line {n}") for n, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise FinetextError(f"API key file {path} holds no key (only blank lines or # comments).",
                            f"Write one key per line. {MAKE_ONE}")
    return keys


def _checked(key: str, where: str) -> str:
    if not KEY_SHAPE.fullmatch(key):
        raise FinetextError(f"{where}: an API key must be visible ASCII characters without spaces.", MAKE_ONE)
    if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS:
        raise FinetextError(f"{where}: an API key needs {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters, "
                            f"this one has {len(key)}.", MAKE_ONE)
    return key


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of the first Authorization header if it says `Bearer KEY`; '' for any other (or an oversized)
    Authorization header; None without one."""
    value = next((v for k, v in headers if k == b"authorization"), None)
    if value is None:
        return None
    if len(value) > MAX_HEADER_CHARS:
        return ""
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class BearerAuth:
    """ASGI middleware: a request to a closed path passes only with `Authorization: Bearer KEY` for a known KEY.

    It runs before the body is read, so an unauthenticated client cannot make the server buffer a body."""

    def __init__(self, app: Any, keys: ApiKeys):
        self.app, self.keys = app, keys

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        token = bearer_token(scope["headers"])
        if token and self.keys.accepts(token):
            return await self.app(scope, receive, send)
        if token is None:
            message, challenge = 'missing API key: send the header "Authorization: Bearer KEY"', "Bearer"
        else:
            message, challenge = "invalid API key", 'Bearer error="invalid_token"'
        # An unread body would otherwise be taken for the next request on this connection.
        return await RequestGuard.refuse(send, 401, message, close=has_body(scope["headers"]),
                                         headers=[(b"www-authenticate", challenge.encode())])


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    values = dict(headers)
    return values.get(b"content-length", b"0").strip() not in (b"0", b"") or b"transfer-encoding" in values
