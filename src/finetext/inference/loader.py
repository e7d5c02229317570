"""Load a model directory into a Classifier through the first inference backend that can read it.

A backend is one module with a class that says whether it can load a directory and loads it; registering it is
one line in BACKENDS. Everything downstream (predict, evaluate, serve, export's check) sees only the Classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from finetext.artifacts import Artifact, open_artifact
from finetext.errors import FinetextError
from finetext.inference.classifier import Classifier, LoadOptions
from finetext.inference.onnx_runtime import OnnxRuntimeBackend
from finetext.inference.pytorch import PyTorchBackend
from finetext.library_output import library_bars_off


class Backend(Protocol):
    """One way of running a model directory. A backend whose runtime not every user needs (onnxruntime,
    OpenVINO, TensorRT) imports it inside load, so that importing the loader does not pay for it."""

    name: str
    """Reported as Classifier.backend (and by the server's GET /info)."""

    def can_load(self, artifact: Artifact) -> bool:
        """Whether artifact is this backend's kind of directory (by its files; nothing is loaded)."""
        ...

    def load(self, artifact: Artifact, options: LoadOptions) -> Classifier:
        """The directory's model as a Classifier (finetext.inference.classifier.classifier_for builds it)."""
        ...


# Asked in order; the first that can load a directory loads it. PyTorch takes any Hugging Face model directory,
# so it comes last.
BACKENDS: tuple[Backend, ...] = (OnnxRuntimeBackend(), PyTorchBackend())


def load_classifier_dir(path: str | Path, trust_remote_code: bool = False, precision: str = "auto",
                        backend: str | None = None) -> Classifier:
    """Load a finetext output directory, an exported directory (ONNX) or any saved HF classification model."""
    return load_classifier(open_artifact(path), LoadOptions(trust_remote_code, precision), backend)


def load_classifier(artifact: Artifact, options: LoadOptions, backend: str | None = None) -> Classifier:
    """artifact's model through the named backend, or the first that can load it."""
    if backend is not None and backend not in {b.name for b in BACKENDS}:
        raise FinetextError(f"unknown inference backend '{backend}'.",
                            f"Choose one of: {', '.join(b.name for b in BACKENDS)}.")
    candidates = [b for b in BACKENDS if backend in (None, b.name)]
    chosen = next((b for b in candidates if b.can_load(artifact)), None)
    if chosen is None:
        what = f"the {backend} backend" if backend else f"any inference backend ({', '.join(b.name for b in BACKENDS)})"
        raise FinetextError(f"{artifact.path} cannot be loaded by {what}.",
                            "Pass the output directory of a training run or of finetext export.")
    with library_bars_off():  # transformers' "Loading weights" bar says nothing to the user
        return chosen.load(artifact, options)
