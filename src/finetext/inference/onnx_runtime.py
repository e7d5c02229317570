"""The onnxruntime backend: an exported directory (model.onnx) behind the same Classifier as PyTorch models.

onnxruntime is imported only when an ONNX directory is loaded: the loader imports this module at its top, and
every load of a PyTorch model would otherwise pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from finetext.artifacts import Artifact
from finetext.errors import FinetextError
from finetext.inference.classifier import Classifier, LoadOptions, classifier_for
from finetext.model_files import check_model_dir, check_tokenizer, reason

ONNX_MODEL = "model.onnx"


class OnnxSequenceClassifier:
    """The part of a PreTrainedModel that predict_logits uses: ``config``, ``device`` and
    ``model(**batch).logits``, computed by an onnxruntime session on the CPU."""

    def __init__(self, session: Any, config: PreTrainedConfig):
        self.session = session
        self.config = config
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_name = session.get_outputs()[0].name

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __call__(self, **batch: torch.Tensor) -> SequenceClassifierOutput:
        feed = {name: self._input(name, batch) for name in self.input_names}  # only what the graph declares
        logits = self.session.run([self.output_name], feed)[0]
        return SequenceClassifierOutput(logits=torch.from_numpy(np.asarray(logits, dtype=np.float32)))

    @staticmethod
    def _input(name: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        value = batch.get(name)
        if value is None and name == "token_type_ids":
            value = torch.zeros_like(batch["input_ids"])
        if value is None:
            raise FinetextError(f"the ONNX model needs the input '{name}', which the batch lacks.",
                                "Tokenize with the tokenizer saved beside model.onnx.")
        return value.detach().cpu().numpy().astype(np.int64, copy=False)


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def can_load(self, artifact: Artifact) -> bool:
        return (artifact.path / ONNX_MODEL).is_file()

    def load(self, artifact: Artifact, options: LoadOptions) -> Classifier:
        """An exported directory (model.onnx, config.json, tokenizer, finetext.yaml) as a Classifier. The graph
        runs in its own types (no autocast) and no remote code is involved, so options do not apply."""
        fix = "Export the model again with `finetext export`."
        check_model_dir(artifact.path, fix)
        try:
            tokenizer = AutoTokenizer.from_pretrained(artifact.path)
        except Exception as exc:  # noqa: BLE001
            raise FinetextError(f"cannot load the tokenizer in {artifact.path}: {reason(exc)}", fix) from None
        check_tokenizer(tokenizer, artifact.path, fix)
        model = OnnxSequenceClassifier(open_session(artifact.path / ONNX_MODEL), _load_config(artifact.path))
        return classifier_for(artifact, model, tokenizer, precision="fp32", backend=self.name)


def open_session(model_file: Path) -> Any:
    """A CPU session with all graph optimizations, using as many threads as torch does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a truncated or corrupt file, a missing external data file
        raise FinetextError(f"cannot load {model_file}: {reason(exc)}",
                            "Export the model again with `finetext export`.") from None


def _load_config(folder: Path) -> PreTrainedConfig:
    """The model's config (labels, num_labels); a model type unknown here still gives the generic config."""
    try:
        return AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError):
        return PreTrainedConfig.from_pretrained(folder)
