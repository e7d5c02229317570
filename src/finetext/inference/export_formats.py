"""The formats `finetext export` writes: the EXPORT_FORMATS registry.

An export format is one module with a ``write(clf, staging, quantize, opset) -> dict`` function that writes the
exported folder's model files and returns what export.json should record about them; it is registered once
below with its name, a description, the quantizations it offers and the inference backend that runs what it
writes. The driver (export.py) does the rest for every format: checks, the tokenizer, config.json and
finetext.yaml, the probability check against PyTorch, export.json, and the atomic move into place. The
registration names the function as "module:function", imported only when an export runs, so the CLI reads this
registry without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetext.errors import FinetextError
from finetext.lazy import import_object

if TYPE_CHECKING:
    from finetext.inference.classifier import Classifier

PROBES = [
    "An absolute delight from start to finish, with a cast that clearly loved the material.",
    "Dull, overlong and badly acted.",
    "The plot is thin but the photography is gorgeous.",
    "I would not recommend this to anyone.",
    "Surprisingly moving.",
    "A clumsy sequel that forgets everything that made the first film work, yet it has a few good jokes.",
    "Fine.",
    "The service was slow and the food arrived cold, although the staff apologised twice.",
]

"""Texts every export is checked on (the exported model's probabilities against PyTorch's), and the example
inputs a graph exporter traces."""


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    """A few words for `finetext export --help`."""
    writer: str
    """"module:function" writing the model files: function(clf, staging, quantize, opset) -> export.json facts."""
    backend: str
    """The inference backend (inference.loader.BACKENDS) that loads the exported folder."""
    quantizations: tuple[str, ...] = ()
    """--quantize values this format offers (none: full-precision weights only)."""

    def write(self, clf: Classifier, staging: Path, quantize: str | None, opset: int | None) -> dict[str, Any]:
        return import_object(self.writer)(clf, staging, quantize, opset)


EXPORT_FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", "an ONNX graph that onnxruntime runs (model.onnx; int8 weights with --quantize int8)",
                 "finetext.inference.onnx_export:write", backend="onnxruntime", quantizations=("int8",)),
)}
"""Every export format by name; the first is the default."""
DEFAULT_FORMAT = next(iter(EXPORT_FORMATS))


def check_choices(format: str = DEFAULT_FORMAT, quantize: str | None = None) -> ExportFormat:
    """The chosen format; an unknown format or quantization fails before anything is loaded."""
    chosen = EXPORT_FORMATS.get(format)
    if chosen is None:
        raise FinetextError(f"unknown export format '{format}'; valid formats: {', '.join(EXPORT_FORMATS)}.",
                            f"Pass --format {' or --format '.join(EXPORT_FORMATS)}.")
    if quantize is not None and quantize not in chosen.quantizations:
        valid = ", ".join(chosen.quantizations) or f"none ({chosen.name} has full-precision weights only)"
        raise FinetextError(f"unknown --quantize value '{quantize}'; valid values: {valid}.",
                            f"Pass --quantize {chosen.quantizations[0]}, or leave it out to export fp32 weights."
                            if chosen.quantizations else "Leave --quantize out.")
    return chosen
