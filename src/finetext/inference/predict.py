"""Batched prediction: sort by length so each batch pads little, run the model, restore the input order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

import finetext.models.scratch  # noqa: F401 - registers the scratch architecture with the Auto classes
from finetext.artifacts import ADAPTER, Artifact, open_artifact
from finetext.data.tokenize import encode
from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.hardware import model_width, resolve_precision
from finetext.inference.onnx_runtime import ONNX_MODEL, load_onnx_classifier
from finetext.model_files import check_model_dir, check_tokenizer, reason, remote_code_error


@dataclass
class Classifier:
    """A loaded model ready to predict: model, tokenizer, label names and the max length it was trained with."""

    model: PreTrainedModel
    tokenizer: object
    label_names: list[str]
    max_length: int
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    settings_known: bool = False
    """True when the directory has finetext.yaml, so the columns above are the ones it was trained on."""
    multi_label: bool = False
    threshold: float = 0.5
    label_separator: str | None = None
    precision: str = "fp32"
    """'bf16' runs the model under bfloat16 autocast (about 2-3x faster on long texts on CPUs with
    AVX512-BF16/AMX); 'auto' decides per call (finetext.hardware.resolve_precision, by the mean tokens of a
    batch); the logits are returned as float32 either way."""

    def accepts_pairs(self, have_pairs: bool) -> bool:
        """Whether input with (or without) second texts fits the model: a pair model needs them, a finetext
        single-text model refuses them, a plain HF model (columns unknown) takes either."""
        if self.text_pair_column:
            return have_pairs
        return not (have_pairs and self.settings_known)


def load_classifier_dir(path: str, trust_remote_code: bool = False, precision: str = "auto") -> Classifier:
    """Load a finetext output directory, an exported ONNX directory or any saved HF classification model.

    precision: 'auto' (bf16 where the hardware runs it natively, else fp32), 'bf16' or 'fp32'."""
    if (Path(path).expanduser() / ONNX_MODEL).is_file():
        return load_onnx_classifier(path)
    artifact = open_artifact(path)
    fix = "Re-run training, or check the directory is complete."
    check_model_dir(artifact.path, fix)  # names a damaged file; refuses pickle-only weights
    try:
        tokenizer = AutoTokenizer.from_pretrained(artifact.path, trust_remote_code=trust_remote_code)
        check_tokenizer(tokenizer, artifact.path, fix)
        if artifact.adapter_only():
            model = _load_base_with_adapter(artifact, trust_remote_code)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                artifact.path, use_safetensors=True, trust_remote_code=trust_remote_code)
    except FinetextError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise remote_code_error(artifact.path, exc) or FinetextError(
            f"cannot load the model in {artifact.path}: {reason(exc)}", fix) from None
    return classifier_for(artifact, model.eval(), tokenizer, precision)


def classifier_for(artifact: Artifact, model, tokenizer, precision: str) -> Classifier:
    """The Classifier of a loaded model (PyTorch, or onnxruntime behind the same call): label names, max
    length, columns and threshold from the artifact's config.json and finetext.yaml."""
    names = artifact.label_names or [str(i) for i in range(model.config.num_labels)]
    max_length = int(artifact.data_setting("max_length") or min(tokenizer.model_max_length, 512))
    return Classifier(
        model, tokenizer, names, max_length,
        text_column=artifact.data_setting("text_column") or "text",
        text_pair_column=artifact.data_setting("text_pair_column"),
        label_column=artifact.data_setting("label_column") or "label",
        settings_known=bool(artifact.settings),
        multi_label=artifact.problem_type == "multi_label_classification",
        threshold=float(artifact.data_setting("threshold") or 0.5),
        label_separator=artifact.data_setting("label_separator"),
        precision=precision,
    )


def _load_base_with_adapter(artifact: Artifact, trust_remote_code: bool) -> PreTrainedModel:
    """An adapter-only LoRA artifact: the base model named in finetext.yaml, the adapter applied and merged."""
    from peft import PeftModel

    from finetext.config import ModelConfig
    from finetext.models.factory import load_model

    if not artifact.model_setting("model"):
        raise FinetextError(f"{artifact.path} holds a LoRA adapter but no finetext.yaml naming its base model.",
                            "Load it with peft.PeftModel.from_pretrained(base_model, 'DIR/adapter').")
    base_cfg = ModelConfig(model=artifact.model_setting("model"), init_from=artifact.model_setting("init_from"),
                           trust_remote_code=trust_remote_code)
    multi = artifact.problem_type == "multi_label_classification"
    _, base = load_model(base_cfg, int(artifact.data_setting("max_length") or 512), artifact.label_names, multi)
    return PeftModel.from_pretrained(base, artifact.path / ADAPTER).merge_and_unload()


@torch.inference_mode()
def predict_logits(clf: Classifier, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64,
                   progress: bool = True, desc: str = "predict", sort_by_length: bool = True) -> np.ndarray:
    """Logits for every text, in input order. Batches are length-sorted (longest first) to minimise padding;
    sort_by_length=False keeps the input order (for measuring what sorting gains)."""
    if pairs is not None and len(pairs) != len(texts):
        raise FinetextError(f"{len(texts)} texts but {len(pairs)} text pairs.")
    encoded = encode(clf.tokenizer, texts, pairs, clf.max_length)
    input_ids = encoded["input_ids"]
    order = (np.argsort([len(ids) for ids in input_ids], kind="stable")[::-1] if sort_by_length
             else np.arange(len(input_ids)))
    device = clf.model.device
    tokens_per_batch = sum(len(ids) for ids in input_ids) / max(1, len(input_ids)) * batch_size
    bf16 = resolve_precision(clf.precision, tokens_per_batch, model_width(clf.model.config)) == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    logits = np.zeros((len(texts), clf.model.config.num_labels), dtype=np.float32)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
        index = order[start:start + batch_size]
        batch = clf.tokenizer.pad({k: [encoded[k][i] for i in index] for k in keys}, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            logits[index] = clf.model(**batch).logits.float().cpu().numpy()
    return logits


def predictions_from_logits(logits: np.ndarray, label_names: list[str], multi_label: bool = False,
                            threshold: float = 0.5) -> list[dict]:
    """One record per text: the most probable label, its probability, and the probability of every label.

    Multi-label records also list ``labels``: every label whose probability reaches the threshold."""
    probabilities = sigmoid(logits) if multi_label else softmax(logits)
    best = probabilities.argmax(axis=-1)
    records = []
    for b, p in zip(best, probabilities, strict=True):
        record = {"label": label_names[int(b)], "score": float(p[b]),
                  "probabilities": {name: float(value) for name, value in zip(label_names, p, strict=True)}}
        if multi_label:
            record["labels"] = [name for name, value in zip(label_names, p, strict=True) if value >= threshold]
        records.append(record)
    return records
