"""The app of one worker process of `finetext serve --workers N`: uvicorn imports this module in each worker and
calls app_from_env, which reads the model directory and the settings the parent process put in the environment.

API keys are not in the environment the parent sets: each worker reads them itself, from the key file or
FINETEXT_API_KEYS, like the parent did.
"""

from __future__ import annotations

import json
import os
import sys

from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from finetext.serving.app import create_app
from finetext.serving.settings import ServeConfig

MODEL_DIR_ENV = "FINETEXT_SERVE_MODEL_DIR"
SETTINGS_ENV = "FINETEXT_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    cfg = ServeConfig(**json.loads(os.environ[SETTINGS_ENV]))
    return create_app(os.environ[MODEL_DIR_ENV], cfg, background=True, on_failure=exit_worker)


def exit_worker(exc: BaseException) -> None:
    """A worker that cannot load its model ends with uvicorn's startup-failure code, so that the supervisor stops
    the server rather than starting the same failing worker again and again."""
    print(f"error: worker {os.getpid()} cannot serve the model: {exc}", file=sys.stderr, flush=True)
    os._exit(STARTUP_FAILURE)
