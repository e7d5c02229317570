"""Mean pooling for pretrained encoders (``pooling: mean``): the classifier reads the average of the last hidden
states over the real tokens instead of the [CLS] pooler.

Sentence-transformers checkpoints (the default all-MiniLM-L6-v2 among them) were trained to make exactly that
average a good text embedding; their [CLS] pooler was never trained at all. transformers has no
"mean-pooled sequence classifier", so this module adds one: any encoder the Auto classes know (``encoder``,
its config kept whole as a sub-config), mean pooling, optional L2 normalisation (when the checkpoint's own
sentence-transformers pipeline normalises), dropout and a linear classifier.

It is registered with the Auto classes under its own model type, so an artifact saves and loads like any
checkpoint (safetensors, ``config.json`` with the label names) wherever ``finetext.architectures`` has been
imported: finetext's commands, and ``transformers.pipeline`` after that import. A process without it refuses
the unknown model type rather than loading the weights into a [CLS]-pooled class.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

from finetext.models.outputs import classification_output

MODEL_TYPE = "finetext-mean-pooling"


class MeanPoolingConfig(PreTrainedConfig):
    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None
    """The encoder's own config (BERT, RoBERTa, ...), saved whole inside this one."""
    normalize: bool = False
    """L2-normalise the pooled vector before the classifier (as the checkpoint's sentence pipeline does)."""
    classifier_dropout: float = 0.1


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The average of the hidden states of the real tokens (padding excluded), one vector per text."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class MeanPoolingForSequenceClassification(PreTrainedModel):
    config_class = MeanPoolingConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: MeanPoolingConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        drop_pooler(self.encoder)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.encoder.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # the encoder initialised itself (and is usually replaced by pretrained weights); only the head is new
        if module is self.classifier:
            nn.init.normal_(module.weight, std=getattr(self.config.encoder, "initializer_range", 0.02))
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled (and, with normalize, unit-length) text vectors the classifier reads."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        pooled = mean_pool(self.encoder(**inputs).last_hidden_state, attention_mask)
        return F.normalize(pooled, dim=-1) if self.config.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **_: object) -> SequenceClassifierOutput:
        logits = self.classifier(self.dropout(self.embed(input_ids, attention_mask, token_type_ids)))
        return classification_output(logits, labels, self.config.problem_type)


def drop_pooler(encoder: nn.Module) -> None:
    """BERT-like encoders carry a [CLS] pooler; mean pooling never reads it, so it is neither trained nor saved."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None


def build_mean_pooled(encoder: PreTrainedModel, label_names: list[str], multi_label: bool,
                      normalize: bool) -> MeanPoolingForSequenceClassification:
    """A mean-pooled classifier around a loaded (pretrained) encoder, with a new head for label_names."""
    config = MeanPoolingConfig(
        encoder=encoder.config, normalize=normalize, num_labels=len(label_names),
        id2label=dict(enumerate(label_names)), label2id={name: i for i, name in enumerate(label_names)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification")
    with torch.device("meta"):  # the encoder is replaced below: building a random one first would be wasted work
        model = MeanPoolingForSequenceClassification(config)
    drop_pooler(encoder)
    model.encoder = encoder
    model.classifier = nn.Linear(encoder.config.hidden_size, len(label_names))
    model._init_weights(model.classifier)
    return model


def checkpoint_pooling(source: str) -> tuple[str | None, bool]:
    """How a sentence-transformers checkpoint pools (its 1_Pooling/config.json: 'mean' or 'cls') and whether its
    pipeline normalises; (None, False) for a plain checkpoint or a Hub id not stored locally."""
    folder = Path(source)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None, False
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        pooling_dir = next((m["path"] for m in modules if m.get("type", "").endswith(".Pooling")), None)
        settings = json.loads((folder / pooling_dir / "config.json").read_text(encoding="utf-8")) if pooling_dir \
            else {}
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    if settings.get("pooling_mode_mean_tokens"):
        return "mean", normalize
    if settings.get("pooling_mode_cls_token"):
        return "cls", normalize
    return None, normalize


def is_mean_pooled(config: PreTrainedConfig) -> bool:
    return getattr(config, "model_type", None) == MODEL_TYPE


AutoConfig.register(MODEL_TYPE, MeanPoolingConfig)
AutoModelForSequenceClassification.register(MeanPoolingConfig, MeanPoolingForSequenceClassification)
