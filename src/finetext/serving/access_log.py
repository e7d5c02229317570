"""The access log of `finetext serve`: one line per answered request on stderr, as text or as JSON.

A line holds the time, request id, method, path (without its query string), status, duration, client address
and number of texts: never a header (Authorization included) nor any of the body. The path is escaped and cut
at 200 characters, so a request cannot forge or flood log lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from finetext.serving.observe import Observation, Observer

LOGGER = "finetext.access"
MAX_PATH_CHARS = 200


def access_logger(log_format: str) -> Observer:
    """An observer that writes each request's line in log_format (text or json) to stderr."""
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers = [handler]  # one app per process in a server; tests build several
    logger.setLevel(logging.INFO)
    logger.propagate = False
    line = json_line if log_format == "json" else text_line

    def write(observation: Observation) -> None:
        logger.info(line(observation))

    return write


def fields(o: Observation) -> dict:
    return {"time": datetime.fromtimestamp(o.time, UTC).isoformat(timespec="milliseconds"),
            "request_id": o.request_id, "method": o.method, "path": o.path[:MAX_PATH_CHARS], "status": o.status,
            "duration_ms": round(1000 * o.seconds, 2), "client": o.client, "texts": o.texts}


def json_line(o: Observation) -> str:
    return json.dumps(fields(o), ensure_ascii=True)


def text_line(o: Observation) -> str:
    f = fields(o)
    path = json.dumps(f["path"], ensure_ascii=True)[1:-1]  # escapes quotes, newlines and control characters
    texts = "-" if f["texts"] is None else f["texts"]
    return (f'{f["time"]} {f["client"]} "{f["method"]} {path}" {f["status"]} {f["duration_ms"]:.1f} ms '
            f'texts={texts} request_id={f["request_id"]}')
