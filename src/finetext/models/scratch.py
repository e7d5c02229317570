"""A small transformer classifier trained from scratch on GloVe word vectors (``--model scratch``).

GloVe embeddings (frozen or trained), an optional projection to the model width, sinusoidal positional
encoding, ``nn.TransformerEncoder``, mean pooling over the real tokens, dropout, and a linear classifier.

It is a ``PreTrainedModel`` registered with the Auto classes under its own model type, so once finetext
is imported it saves and loads like any checkpoint (``save_pretrained``, safetensors, ``config.json``
with the label names), the Trainer and native engines train it, and the strategies (head = the final layer
only, top_k, lora) find its parts the way they find BERT's.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from finetext.config import ModelConfig
from finetext.models.glove import build_tokenizer, embedding_matrix, load_word_vectors
from finetext.models.outputs import classification_output

log = logging.getLogger("finetext")

MODEL_TYPE = "finetext-glove-transformer"


class GloveTransformerConfig(PreTrainedConfig):
    model_type = MODEL_TYPE

    vocab_size: int = 100_003
    embedding_size: int = 50
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    hidden_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    pad_token_id: int | None = 0


def sinusoidal_positions(length: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The fixed encoding of "Attention is all you need": sin on even, cos on odd dimensions. Computed per
    call (it is tiny) rather than kept as a buffer, so any length works and there is no state to load."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    encoding = torch.zeros(length, width, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return encoding.to(dtype)


class GloveTransformerEncoder(nn.Module):
    """Word ids -> one vector per text: embeddings, positions, transformer layers, masked mean pooling."""

    def __init__(self, config: GloveTransformerConfig):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.projection = (nn.Linear(config.embedding_size, config.hidden_size)
                           if config.embedding_size != config.hidden_size else nn.Identity())
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        layer = nn.TransformerEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                           config.hidden_dropout_prob, batch_first=True)
        # No dropout on the attention probabilities: on a CPU, drawing a random mask for every L x L attention
        # matrix took 40% of a training step (torch profiler, 16 x 200 tokens). Dropout stays everywhere else.
        layer.self_attn.dropout = 0.0
        self.encoder = nn.TransformerEncoder(layer, config.num_hidden_layers, enable_nested_tensor=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.projection(self.embeddings(input_ids))
        hidden = hidden + sinusoidal_positions(input_ids.shape[1], hidden.shape[-1], hidden.device, hidden.dtype)
        hidden = self.encoder(self.dropout(hidden), src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class GloveTransformerForSequenceClassification(PreTrainedModel):
    config_class = GloveTransformerConfig
    base_model_prefix = "glove_transformer"
    main_input_name = "input_ids"

    def __init__(self, config: GloveTransformerConfig):
        super().__init__(config)
        self.glove_transformer = GloveTransformerEncoder(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.glove_transformer.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.glove_transformer.embeddings = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: object) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        pooled = self.glove_transformer(input_ids, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        return classification_output(logits, labels, self.config.problem_type)


AutoConfig.register(MODEL_TYPE, GloveTransformerConfig)
AutoModelForSequenceClassification.register(GloveTransformerConfig, GloveTransformerForSequenceClassification)


def build_scratch(cfg: ModelConfig, max_length: int, label_names: list[str],
                  multi_label: bool) -> tuple[PreTrainedTokenizerFast, GloveTransformerForSequenceClassification]:
    """A new tokenizer and model: vocabulary and embeddings from GloVe, everything else freshly initialised."""
    vectors = load_word_vectors(cfg.glove_file, cfg.scratch_vocab_size)
    tokenizer = build_tokenizer(vectors.words, max_length)
    embeddings = embedding_matrix(vectors.vectors)
    config = GloveTransformerConfig(
        vocab_size=len(embeddings), embedding_size=embeddings.shape[1], hidden_size=cfg.scratch_width,
        num_hidden_layers=cfg.scratch_layers, num_attention_heads=cfg.scratch_heads,
        intermediate_size=4 * cfg.scratch_width, hidden_dropout_prob=cfg.scratch_dropout,
        max_position_embeddings=max(512, max_length), num_labels=len(label_names),
        id2label=dict(enumerate(label_names)), label2id={name: i for i, name in enumerate(label_names)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    model = GloveTransformerForSequenceClassification(config)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.from_numpy(embeddings))
    log.info("scratch model: %s GloVe words (%d dimensions, from %s), %d layers x %d wide, %d heads",
             f"{len(vectors.words):,}", embeddings.shape[1], vectors.source, cfg.scratch_layers, cfg.scratch_width,
             cfg.scratch_heads)
    return tokenizer, model
