"""The ONNX export format: the model as one ONNX graph (optionally with int8 weights) for onnxruntime."""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from finetext.errors import FinetextError
from finetext.inference.classifier import Classifier
from finetext.inference.export_formats import PROBES
from finetext.inference.onnx_runtime import ONNX_MODEL

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf caps one file at 2 GiB; larger models keep weights in model.onnx.data


def write(clf: Classifier, staging: Path, quantize: str | None, opset: int | None) -> dict[str, Any]:
    """model.onnx (fp32, or int8 with quantize) in staging; returns export.json's ONNX facts."""
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
    return _onnx_facts(staging, names)


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


def _onnx_facts(staging: Path, names: list[str]) -> dict[str, Any]:
    import onnx
    import onnxruntime

    graph = onnx.load(str(staging / ONNX_MODEL), load_external_data=False)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": opset, "inputs": names, "outputs": ["logits"], "onnx_version": onnx.__version__,
            "onnxruntime_version": onnxruntime.__version__}
