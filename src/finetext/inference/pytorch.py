"""The PyTorch backend: a finetext run's directory (full weights, or a LoRA adapter on its base model) or any
saved Hugging Face classification model, loaded with transformers."""

from __future__ import annotations

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

import finetext.architectures  # noqa: F401 - registers finetext's architectures with the Auto classes
from finetext.artifacts import ADAPTER, Artifact
from finetext.errors import FinetextError
from finetext.inference.classifier import Classifier, LoadOptions, classifier_for
from finetext.model_files import check_model_dir, check_tokenizer, reason, remote_code_error

_FIX = "Re-run training, or check the directory is complete."


class PyTorchBackend:
    name = "pytorch"

    def can_load(self, artifact: Artifact) -> bool:
        """Any model directory: transformers decides what it holds (and check_model_dir what is damaged)."""
        return True

    def load(self, artifact: Artifact, options: LoadOptions) -> Classifier:
        check_model_dir(artifact.path, _FIX)  # names a damaged file; refuses pickle-only weights
        trust = options.trust_remote_code
        try:
            tokenizer = AutoTokenizer.from_pretrained(artifact.path, trust_remote_code=trust)
            check_tokenizer(tokenizer, artifact.path, _FIX)
            if artifact.adapter_only():
                model = _load_base_with_adapter(artifact, trust)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(
                    artifact.path, use_safetensors=True, trust_remote_code=trust)
        except FinetextError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise remote_code_error(artifact.path, exc) or FinetextError(
                f"cannot load the model in {artifact.path}: {reason(exc)}", _FIX) from None
        return classifier_for(artifact, model.eval(), tokenizer, options.precision, self.name)


def _load_base_with_adapter(artifact: Artifact, trust_remote_code: bool) -> PreTrainedModel:
    """An adapter-only LoRA artifact: the base model named in finetext.yaml, the adapter applied and merged."""
    from peft import PeftModel

    from finetext.config import ModelConfig
    from finetext.models.factory import load_model

    if artifact.config is None:
        raise FinetextError(f"{artifact.path} holds a LoRA adapter but no finetext.yaml naming its base model.",
                            "Load it with peft.PeftModel.from_pretrained(base_model, 'DIR/adapter').")
    saved = artifact.config
    base_cfg = ModelConfig(model=saved.model.model, init_from=saved.model.init_from,
                           trust_remote_code=trust_remote_code)
    multi = artifact.problem_type == "multi_label_classification"
    _, base = load_model(base_cfg, saved.data.max_length, artifact.label_names, multi)
    return PeftModel.from_pretrained(base, artifact.path / ADAPTER).merge_and_unload()
