"""Which Keras backend runs the keras engine, what each one needs installed, and loading Keras with it.

Keras reads KERAS_BACKEND once, when it is first imported: the engine sets it before that import and refuses a
process in which Keras was already loaded with another backend.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from finetext.errors import FinetextError

BACKENDS = ("torch", "tensorflow")
REQUIRED = {"torch": ("keras",), "tensorflow": ("keras", "tensorflow", "keras_hub")}
"""The modules each backend imports, beside finetext's own dependencies."""
INSTALL = {"torch": 'pip install "finetext[keras]"', "tensorflow": 'pip install "finetext[tensorflow]"'}


def chosen_backend(configured: str | None) -> str:
    """--keras-backend, else KERAS_BACKEND, else torch."""
    name = configured or os.environ.get("KERAS_BACKEND") or "torch"
    if name not in BACKENDS:
        raise FinetextError(f"the keras engine runs on the torch or tensorflow backend, not '{name}'.",
                            "Pass --keras-backend torch or --keras-backend tensorflow (or set KERAS_BACKEND).")
    return name


def check_installed(backend: str) -> None:
    """One line naming the pip install to run when a module the backend needs is missing."""
    missing = [name for name in REQUIRED[backend] if importlib.util.find_spec(name) is None]
    if missing:
        raise FinetextError(f"--engine keras on the {backend} backend needs {', '.join(missing)} (not installed).",
                            f"Run: {INSTALL[backend]}")


def import_keras(backend: str) -> ModuleType:
    """Keras 3, running on backend."""
    check_installed(backend)
    loaded = sys.modules.get("keras")
    if loaded is None:
        os.environ["KERAS_BACKEND"] = backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices (GPU probing, oneDNN)
    import keras

    if int(keras.__version__.split(".")[0]) < 3:
        raise FinetextError(f"--engine keras needs Keras 3; Keras {keras.__version__} is installed.",
                            f"Run: {INSTALL[backend]}")
    if keras.backend.backend() != backend:
        raise FinetextError(f"Keras is already loaded with the {keras.backend.backend()} backend in this process.",
                            f"Run finetext in a new process with KERAS_BACKEND={backend}.")
    return keras
