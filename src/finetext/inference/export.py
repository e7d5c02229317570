"""`finetext export`: a trained classifier written in another format (EXPORT_FORMATS), checked against PyTorch.

Every format's exported directory holds its model files (written by the format's module), the tokenizer,
config.json (label names), finetext.yaml (when the source had one) and export.json (format, versions, and the
largest probability difference from PyTorch on a few probe texts, measured by loading the exported directory
through the format's inference backend). It is built in a staging folder beside the output directory and
renamed or swapped into place at the end (finetext.storage.staged_folder), so an interrupted export leaves the
previous directory or the new one, never a half-written one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from finetext.artifacts import MANIFEST
from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.inference.classifier import Classifier
from finetext.inference.export_formats import DEFAULT_FORMAT, PROBES, ExportFormat, check_choices
from finetext.inference.loader import load_classifier_dir
from finetext.inference.predict import predict_logits
from finetext.model_files import read_json
from finetext.storage import remove_stale_staging, staged_folder, write_json
from finetext.version import __version__

EXPORT_INFO = "export.json"


def export_model(model_dir: str | Path, output_dir: str | Path, format: str = DEFAULT_FORMAT,
                 quantize: str | None = None, opset: int | None = None, overwrite: bool = False) -> Path:
    """Write model_dir's classifier in format at output_dir; returns output_dir."""
    chosen = check_choices(format, quantize)
    source = Path(model_dir).expanduser()
    if (source / EXPORT_INFO).is_file():
        exported = read_json(source / EXPORT_INFO, "Export it again with `finetext export`.")
        kind = f"an {exported['format'].upper()}" if isinstance(exported, dict) and "format" in exported else "an"
        raise FinetextError(f"{source} is already {kind} export.", "Pass the output directory of a training run.")
    out = Path(output_dir).expanduser()
    remove_stale_staging(out)  # left by a killed export (which may have set the previous one aside)
    _check_output_dir(out, source, overwrite)
    clf = load_classifier_dir(str(source), precision="fp32")
    try:
        with staged_folder(out) as staging:
            _write_export(chosen, clf, source, staging, quantize, opset)
    except OSError as exc:
        raise FinetextError(f"cannot write the export to {out}: {exc.strerror or exc}.",
                            "Choose a writable --output-dir with free space.") from None
    return out


def _check_output_dir(out: Path, source: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FinetextError(f"output directory {out} is a file.", "Pass a directory with --output-dir.")
    if out.resolve() == source.resolve() or out.resolve() in source.resolve().parents:
        raise FinetextError(f"--output-dir {out} would replace the model being exported.",
                            "Choose another --output-dir.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FinetextError(f"output directory {out} already exists and is not empty.",
                            "Pass --overwrite to replace it, or choose another --output-dir.")


def _write_export(chosen: ExportFormat, clf: Classifier, source: Path, staging: Path, quantize: str | None,
                  opset: int | None) -> None:
    facts = chosen.write(clf, staging, quantize, opset)
    clf.tokenizer.save_pretrained(staging)
    clf.model.config.save_pretrained(staging)
    if (source / MANIFEST).is_file():
        shutil.copyfile(source / MANIFEST, staging / MANIFEST)
    difference = _max_probability_difference(clf, staging, chosen.backend)
    write_json(staging / EXPORT_INFO, {"format": chosen.name, "quantize": quantize, **facts,
                                       "source": str(source.resolve()), "finetext_version": __version__,
                                       "torch_version": torch.__version__, "probe_texts": len(PROBES),
                                       "max_probability_difference": difference})


def _max_probability_difference(clf: Classifier, staging: Path, backend: str) -> float:
    """Probabilities of the probe texts from PyTorch and from the exported directory, loaded through the
    format's backend. The exported side runs in batches of 3, so it also sees batch sizes and padded lengths
    other than an exporter's example."""
    pairs = list(reversed(PROBES)) if clf.text_pair_column else None
    exported = load_classifier_dir(staging, precision="fp32", backend=backend)
    reference = predict_logits(clf, PROBES, pairs, batch_size=len(PROBES), progress=False)
    logits = predict_logits(exported, PROBES, pairs, batch_size=3, progress=False)
    probabilities = sigmoid if clf.multi_label else softmax
    return float(np.abs(probabilities(logits) - probabilities(reference)).max())
