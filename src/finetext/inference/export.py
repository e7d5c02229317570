"""Export a trained classifier to ONNX (optionally int8-quantized), checked against PyTorch at export time.

The exported directory holds model.onnx, the tokenizer, config.json (label names), finetext.yaml (when the
source had one) and export.json (versions and the measured difference). It is built in a staging folder
beside the output directory and renamed or swapped into place at the end (finetext.storage.staged_folder), so
an interrupted export leaves the previous directory or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from finetext.artifacts import MANIFEST
from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.inference.classifier import Classifier
from finetext.inference.loader import load_classifier_dir
from finetext.inference.onnx_runtime import ONNX_MODEL, OnnxRuntimeBackend
from finetext.inference.predict import predict_logits
from finetext.storage import remove_stale_staging, staged_folder, write_json
from finetext.version import __version__

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
EXPORT_INFO = "export.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf caps one file at 2 GiB; larger models keep weights in model.onnx.data
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


def check_choices(format: str = "onnx", quantize: str | None = None) -> None:
    """Unknown --format or --quantize values fail before anything is loaded."""
    if format not in FORMATS:
        raise FinetextError(f"unknown export format '{format}'; valid formats: {', '.join(FORMATS)}.",
                            "Pass --format onnx.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise FinetextError(f"unknown --quantize value '{quantize}'; valid values: {', '.join(QUANTIZATIONS)}.",
                            "Pass --quantize int8, or leave it out to export fp32 weights.")


def export_onnx(model_dir: str | Path, output_dir: str | Path, quantize: str | None = None, opset: int | None = None,
                overwrite: bool = False) -> Path:
    """Write model_dir's classifier as an ONNX directory at output_dir; returns output_dir."""
    check_choices("onnx", quantize)
    source = Path(model_dir).expanduser()
    if (source / ONNX_MODEL).is_file():
        raise FinetextError(f"{source} is already an ONNX export.", "Pass the output directory of a training run.")
    out = Path(output_dir).expanduser()
    remove_stale_staging(out)  # left by a killed export (which may have set the previous one aside)
    _check_output_dir(out, source, overwrite)
    clf = load_classifier_dir(str(source), precision="fp32")
    try:
        with staged_folder(out) as staging:
            _write_export(clf, source, staging, quantize, opset)
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


def _write_export(clf: Classifier, source: Path, staging: Path, quantize: str | None, opset: int | None) -> None:
    names = _input_names(clf)
    external = _parameter_bytes(clf.model) > SINGLE_FILE_LIMIT
    if quantize is None:
        _export_graph(clf, names, staging / ONNX_MODEL, opset, external)
    else:
        fp32_dir = staging / ".fp32"  # a folder of its own, so an external-data file goes with it
        fp32_dir.mkdir()
        _export_graph(clf, names, fp32_dir / ONNX_MODEL, opset, external)
        _quantize_int8(fp32_dir / ONNX_MODEL, staging / ONNX_MODEL, external)
        shutil.rmtree(fp32_dir)
    clf.tokenizer.save_pretrained(staging)
    clf.model.config.save_pretrained(staging)
    if (source / MANIFEST).is_file():
        shutil.copyfile(source / MANIFEST, staging / MANIFEST)
    difference = _max_probability_difference(clf, staging)
    write_json(staging / EXPORT_INFO, _export_info(source, staging, names, quantize, difference))


class _LogitsOnly(torch.nn.Module):
    """Named tensor inputs in, the logits tensor out (HF models return a ModelOutput and take **kwargs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, **{k: v for k, v in given.items() if v is not None}).logits


def _input_names(clf: Classifier) -> list[str]:
    """The inputs the tokenizer produces (token_type_ids only for tokenizers that make them)."""
    produced = clf.tokenizer(PROBES[0], PROBES[1] if clf.text_pair_column else None)
    return [name for name in INPUTS if name in produced]


def _parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _export_graph(clf: Classifier, names: list[str], path: Path, opset: int | None, external: bool) -> None:
    """torch.onnx.export with the dynamo exporter (torch.export + onnxscript), the default since torch 2.9.

    The legacy TorchScript exporter traces one example and bakes its shapes into any Python-computed shape:
    on the scratch model (nn.MultiheadAttention) its graph fails at any other batch size. torch.export records
    symbolic batch and sequence dimensions instead, and raises rather than specialising silently, so the
    graph it gives is correct for every shape."""
    example = _encode(clf, PROBES[:2], max_length=clf.max_length)  # 2 rows: size-1 dims would be specialised
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with _quiet_exporter():
            torch.onnx.export(
                _LogitsOnly(clf.model).eval(), (), str(path), kwargs={k: example[k] for k in names},
                input_names=names, output_names=["logits"], opset_version=opset, dynamo=True,
                dynamic_shapes={name: {0: batch, 1: sequence} for name in names}, external_data=external,
                verbose=False)
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(str(exc.__cause__ or exc).split())[:300]
        raise FinetextError(f"torch.onnx could not export the model: {reason}",
                            "Check the opset (18 or later) and that the model runs with torch.export.") from None


def _encode(clf: Classifier, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    pairs = list(reversed(texts)) if clf.text_pair_column else None
    return clf.tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


@contextlib.contextmanager
def _quiet_exporter(*extra: str) -> Iterator[None]:
    """The exporter warns about unused axis names and torchvision ops and its optimizer logs every pass (at
    INFO, which the CLI shows); none of it concerns the user."""
    names = ("torch.onnx", "onnxscript", "onnx_ir", *extra)
    loggers = [logging.getLogger(name or None) for name in names]
    levels = [log.level for log in loggers]
    try:
        for log in loggers:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _quantize_int8(fp32: Path, int8: Path, external: bool) -> None:
    """Dynamic quantization: int8 weights (per output channel), activations quantized per batch at run time,
    no calibration data.

    Every MatMul with a constant weight becomes MatMulInteger: all Linear layers, the classifier head included
    (the quantizer turns Gemm into MatMul). The two activation-by-activation MatMuls of attention stay fp32.
    Gather of the embedding tables stores int8 rows, dequantized after the lookup. LayerNorm, Softmax, GELU
    and the additions stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _drop_value_info(fp32)
    try:
        with _quiet_exporter("onnxruntime", ""):  # "": its advice to pre-process goes to the root logger
            quantize_dynamic(fp32, int8, op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                             weight_type=QuantType.QInt8, use_external_data_format=external)
    except Exception as exc:  # noqa: BLE001
        raise FinetextError(f"int8 quantization failed: {' '.join(str(exc).split())[:300]}",
                            "Export without --quantize.") from None


def _drop_value_info(path: Path) -> None:
    """The dynamo exporter records the shape of every value, weights included. The quantizer turns Gemm into
    MatMul by transposing the weight, and onnx's shape inference then fails on the stale recorded shape
    ("Inferred shape and existing shape differ"). The recorded shapes are only hints: drop them."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    del graph.graph.value_info[:]
    onnx.save(graph, str(path))


def _max_probability_difference(clf: Classifier, staging: Path) -> float:
    """Probabilities of the probe texts from PyTorch and from the exported graph. The ONNX side runs in
    batches of 3, so it also sees batch sizes and padded lengths other than the export example's."""
    pairs = list(reversed(PROBES)) if clf.text_pair_column else None
    exported = load_classifier_dir(staging, precision="fp32", backend=OnnxRuntimeBackend.name)
    reference = predict_logits(clf, PROBES, pairs, batch_size=len(PROBES), progress=False)
    logits = predict_logits(exported, PROBES, pairs, batch_size=3, progress=False)
    probabilities = sigmoid if clf.multi_label else softmax
    return float(np.abs(probabilities(logits) - probabilities(reference)).max())


def _export_info(source: Path, staging: Path, names: list[str], quantize: str | None, difference: float) -> dict:
    import onnx
    import onnxruntime

    graph = onnx.load(str(staging / ONNX_MODEL), load_external_data=False)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {"format": "onnx", "quantize": quantize, "opset": opset, "inputs": names, "outputs": ["logits"],
            "source": str(source.resolve()), "finetext_version": __version__, "torch_version": torch.__version__,
            "onnx_version": onnx.__version__, "onnxruntime_version": onnxruntime.__version__,
            "probe_texts": len(PROBES), "max_probability_difference": difference}
