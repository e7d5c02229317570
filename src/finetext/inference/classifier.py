"""What every inference backend loads a model directory into: a Classifier.

This module imports no backend and no ML library, so the backends (pytorch.py, onnx_runtime.py, ...), the
loader that picks one, prediction and scoring all import it and none of them imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from finetext.config import DataConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig

    from finetext.artifacts import Artifact

PLAIN_MODEL_MAX_LENGTH = 512
"""A plain Hugging Face directory (no finetext.yaml) is read up to its tokenizer's limit, capped here: some
tokenizers state no limit (a huge sentinel value)."""


class SequenceClassifier(Protocol):
    """What prediction needs of a backend's model: its config (num_labels, labels), the device its inputs go
    to, and ``model(**batch).logits`` for a batch of token tensors. A transformers PreTrainedModel is one."""

    config: PreTrainedConfig

    @property
    def device(self) -> torch.device: ...

    def __call__(self, **batch: torch.Tensor) -> Any: ...


@dataclass(frozen=True)
class LoadOptions:
    """What the caller asks of a load; a backend ignores what does not apply to it (onnxruntime runs the
    graph's own types and never runs a directory's Python code)."""

    trust_remote_code: bool = False
    """Run the model directory's own Python code (auto_map in config.json)."""
    precision: str = "auto"
    """'auto' (bf16 or fp32, whichever measured faster here), 'bf16' or 'fp32'."""


@dataclass(frozen=True)
class Classifier:
    """A loaded model ready to predict: model, tokenizer, label names and the settings it was trained with.

    Frozen: a caller that needs other settings (evaluate's --max-length or --threshold) derives a copy with
    dataclasses.replace, so one loaded model can be shared (the server) without one caller changing another's."""

    model: SequenceClassifier
    tokenizer: Any
    label_names: list[str]
    max_length: int
    threshold: float
    """Multi-label only: a label is predicted when its probability reaches this."""
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    settings_known: bool = False
    """True when the directory has finetext.yaml, so the columns above are the ones it was trained on."""
    multi_label: bool = False
    label_separator: str | None = None
    precision: str = "fp32"
    """'bf16' runs the model under bfloat16 autocast; 'auto' runs bf16 or fp32, whichever measured faster for this
    model and batch shape on this machine (finetext.inference.precision); the logits are float32 either way."""
    backend: str = "pytorch"
    """The inference backend that loaded the model (finetext.inference.loader.BACKENDS)."""
    long_text: str = DataConfig.long_text
    """'chunk': texts are read as overlapping windows of max_length tokens (stride shared) and the windows'
    probabilities combined per text (window_aggregation); 'truncate': the first max_length tokens."""
    stride: int = DataConfig.stride
    window_aggregation: str = DataConfig.window_aggregation

    def accepts_pairs(self, have_pairs: bool) -> bool:
        """Whether input with (or without) second texts fits the model: a pair model needs them, a finetext
        single-text model refuses them, a plain HF model (columns unknown) takes either."""
        if self.text_pair_column:
            return have_pairs
        return not (have_pairs and self.settings_known)


def classifier_for(artifact: Artifact, model: SequenceClassifier, tokenizer: Any, precision: str,
                   backend: str) -> Classifier:
    """The Classifier of a model a backend loaded from artifact: label names from its config.json, max length,
    columns, threshold and long-text settings from its finetext.yaml, or DataConfig's defaults for a plain HF
    directory."""
    data = artifact.config.data if artifact.config else DataConfig()
    max_length = data.max_length if artifact.config else min(tokenizer.model_max_length, PLAIN_MODEL_MAX_LENGTH)
    return Classifier(
        model, tokenizer, artifact.label_names or [str(i) for i in range(model.config.num_labels)], max_length,
        threshold=data.threshold,
        text_column=data.text_column or "text",
        text_pair_column=data.text_pair_column,
        label_column=data.label_column or "label",
        settings_known=artifact.config is not None,
        multi_label=artifact.problem_type == "multi_label_classification",
        label_separator=data.label_separator,
        precision=precision,
        backend=backend,
        long_text=data.long_text,
        stride=data.stride,
        window_aggregation=data.window_aggregation,
    )
