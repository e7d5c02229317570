"""finetext's BERT classifiers as Keras 3 models (keras-hub's BertBackbone), for the keras engine's TensorFlow backend.

The run has already loaded its torch classifier (finetext's mean-pooled one or transformers'
BertForSequenceClassification) and applied its strategy. TensorflowBert builds the same network in Keras and copies
every weight from that torch model, head included, so a seed starts from the weights the other engines start from;
it mirrors each parameter's requires_grad onto the Keras variable, and checks that both give the same logits before
any training. After training, copy_to_torch writes the weights back, and the run saves, evaluates and exports the
torch model as with any engine.

Weights come from the torch model rather than from BertBackbone.from_preset(source): the torch model may hold more
than the checkpoint (an --init-from artifact's trained encoder, a resized vocabulary), and from_preset builds the
encoder with the tanh approximation of GELU where BERT checkpoints use the exact one.

Everything here is Keras ops, so it should also run on Keras' other backends; it is tested with TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import keras_hub
import numpy as np
import torch
from torch import nn

from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
LOGITS_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}
"""Largest absolute difference of logits accepted between the Keras model (by its compute dtype) and the fp32 torch
model it was built from."""


def gelu_exact(x):
    return keras.activations.gelu(x, approximate=False)


def gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS: dict[str, Callable] = {"gelu": gelu_exact, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh,
                                    "relu": keras.activations.relu}
"""transformers' hidden_act names and the same function in Keras (keras-hub's BertBackbone only has the tanh GELU)."""


def tensorflow_support(model: nn.Module) -> str | None:
    """Why the keras engine's TensorFlow backend cannot train this torch model (one sentence), or None if it can.

    Only plain BERT encoders under finetext's mean-pooled head or transformers' [CLS] head map onto BertBackbone;
    LoRA adapters and other architectures have no Keras counterpart here."""
    from transformers import BertForSequenceClassification

    from finetext.models.mean_pooling import MeanPoolingForSequenceClassification

    if hasattr(model, "peft_config"):
        return "LoRA (a peft-wrapped model) has no TensorFlow counterpart in finetext."
    if not isinstance(model, MeanPoolingForSequenceClassification | BertForSequenceClassification):
        return f"{type(model).__name__} is neither a mean-pooled nor a [CLS]-pooled BERT classifier."
    config = model.base_model.config
    if config.model_type != "bert":
        return f"the encoder is {config.model_type}, and only BERT encoders are built in TensorFlow."
    if config.hidden_act not in ACTIVATIONS:
        return f"the encoder's activation {config.hidden_act!r} has no Keras counterpart here."
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return "only BERT encoders with absolute position embeddings are built in TensorFlow."
    return None


@dataclass(frozen=True)
class WeightPair:
    """One torch parameter and the Keras variable holding it. A linear weight is (out, in) in torch and its
    transpose, split into heads for attention ((in, heads, head_dim) or (heads, head_dim, out)), in Keras."""

    torch_name: str
    variable: keras.Variable
    linear: bool = False

    def to_keras(self, value: np.ndarray) -> np.ndarray:
        return (value.T if self.linear else value).reshape(self.variable.shape)

    def to_torch(self, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return value.reshape(shape[::-1]).T if self.linear else value.reshape(shape)


class MaskedMeanPooling(keras.layers.Layer):
    """finetext's mean pooling: the average of the real tokens' hidden states, L2-normalised with normalize."""

    def __init__(self, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.normalize = normalize

    def call(self, hidden, attention_mask):
        mask = keras.ops.expand_dims(keras.ops.cast(attention_mask, hidden.dtype), -1)
        pooled = keras.ops.sum(hidden * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1e-9)
        if not self.normalize:
            return pooled
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(pooled), axis=-1, keepdims=True))
        return pooled / keras.ops.maximum(norm, 1e-12)  # as torch.nn.functional.normalize

    def get_config(self) -> dict:
        return {**super().get_config(), "normalize": self.normalize}


class TensorflowBert:
    """A Keras copy of a torch BERT classifier (`keras_model`), and the way back (`copy_to_torch`)."""

    def __init__(self, torch_model: nn.Module, dtype: str | None = None):
        reason = tensorflow_support(torch_model)
        if reason:
            raise FinetextError(f"--engine keras with TensorFlow cannot train this model: {reason}",
                                "Use --keras-backend torch, which trains every model and strategy.")
        from finetext.models.mean_pooling import MeanPoolingForSequenceClassification

        self.mean_pooled = isinstance(torch_model, MeanPoolingForSequenceClassification)
        self.backbone = build_backbone(torch_model.base_model.config, dtype)
        # mean pooling never reads BertBackbone's [CLS] pooler (the torch model has dropped it): nothing trains it
        self.backbone.get_layer("pooled_dense").trainable = not self.mean_pooled
        self.keras_model = self._build_model(torch_model, dtype)
        self.pairs = self._weight_pairs(torch_model)
        self._copy_from_torch(torch_model)
        difference = self.max_logit_difference(torch_model, probe_batch(torch_model.base_model.config))
        if not difference <= LOGITS_TOLERANCE.get(self.backbone.dtype_policy.compute_dtype, 1e-4):
            raise FinetextError(f"the Keras copy of the model disagrees with it: logits differ by {difference:.3g}.",
                                "Report this as a finetext bug; use another engine meanwhile.")

    def _build_model(self, torch_model: nn.Module, dtype: str | None) -> keras.Model:
        """input_ids, attention_mask, token_type_ids -> logits, pooled and classified as the torch model does."""
        config = torch_model.config
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        outputs = self.backbone({"token_ids": inputs["input_ids"], "segment_ids": inputs["token_type_ids"],
                                 "padding_mask": inputs["attention_mask"]})
        if self.mean_pooled:
            pooled = MaskedMeanPooling(config.normalize, dtype=dtype, name="mean_pooling")(
                outputs["sequence_output"], inputs["attention_mask"])
        else:
            pooled = outputs["pooled_output"]
        rate = config.classifier_dropout
        if rate is None:  # BertForSequenceClassification's default
            rate = config.hidden_dropout_prob
        pooled = keras.layers.Dropout(rate, dtype=dtype, name="classifier_dropout")(pooled)
        logits = keras.layers.Dense(config.num_labels, dtype=dtype, name="classifier")(pooled)
        return keras.Model(inputs, logits, name="finetext_bert_classifier")

    def _weight_pairs(self, torch_model: nn.Module) -> list[WeightPair]:
        """Every torch parameter with its Keras variable; fails if the two models do not cover each other."""
        prefix = torch_model.base_model_prefix
        pairs = [WeightPair(f"{prefix}.{name}", variable, linear)
                 for name, variable, linear in backbone_pairs(self.backbone, with_pooler=not self.mean_pooled)]
        head = self.keras_model.get_layer("classifier")
        pairs += [WeightPair("classifier.weight", head.kernel, True), WeightPair("classifier.bias", head.bias)]
        torch_names = {name for name, _ in torch_model.named_parameters()}
        if torch_names != {pair.torch_name for pair in pairs}:
            raise FinetextError("the torch and Keras models' weights do not correspond one to one: "
                                f"{sorted(torch_names ^ {pair.torch_name for pair in pairs})[:4]}.",
                                "Report this as a finetext bug; use another engine meanwhile.")
        return pairs

    def _copy_from_torch(self, torch_model: nn.Module) -> None:
        """Keras weights := torch weights, and Keras trainability := requires_grad, parameter by parameter (a
        strategy freezes whatever it freezes: the head strategy all but the classifier, top_k the lower layers,
        freeze_embeddings the word embeddings alone)."""
        parameters = dict(torch_model.named_parameters())
        for pair in self.pairs:
            parameter = parameters[pair.torch_name]
            pair.variable.assign(pair.to_keras(parameter.detach().cpu().float().numpy()))
            pair.variable.trainable = parameter.requires_grad

    def copy_to_torch(self, torch_model: nn.Module) -> None:
        """Write the trained Keras weights into torch_model in place (the same architecture), so that the run
        saves, evaluates and exports it as it does after any engine."""
        parameters = dict(torch_model.named_parameters())
        with torch.no_grad():
            for pair in self.pairs:
                parameter = parameters[pair.torch_name]
                value = pair.to_torch(keras.ops.convert_to_numpy(pair.variable), tuple(parameter.shape))
                parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def keras_logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """The Keras model's logits in inference mode (dropout off)."""
        inputs = {name: np.asarray(batch[name], dtype="int32") for name in INPUT_NAMES}
        return keras.ops.convert_to_numpy(self.keras_model(inputs, training=False)).astype(np.float64)

    def max_logit_difference(self, torch_model: nn.Module, batch: dict[str, np.ndarray]) -> float:
        """Largest absolute difference between the two models' logits on batch: the check that both compute the
        same function."""
        return float(np.abs(self.keras_logits(batch) - torch_logits(torch_model, batch)).max())

    def max_probability_difference(self, torch_model: nn.Module, batch: dict[str, np.ndarray],
                                   multi_label: bool = False) -> float:
        """Largest absolute difference between the two models' probabilities on batch (softmax, or sigmoid per
        label with multi_label): after copy_to_torch, whether the torch model predicts what the Keras one learnt."""
        to_probabilities = sigmoid if multi_label else softmax
        return float(np.abs(to_probabilities(self.keras_logits(batch))
                            - to_probabilities(torch_logits(torch_model, batch))).max())


def build_backbone(config, dtype: str | None) -> keras_hub.models.BertBackbone:
    """keras-hub's BERT with the torch encoder's sizes, activation, layer-norm epsilon and dropouts.

    BertBackbone fixes what transformers configures (the tanh GELU, epsilon 1e-12, one dropout rate for the
    attention probabilities and the hidden states), so those are set on its layers after it is built."""
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers, num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size, intermediate_dim=config.intermediate_size,
        dropout=config.hidden_dropout_prob, max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size, dtype=dtype)
    backbone.get_layer("embeddings_layer_norm").epsilon = config.layer_norm_eps
    for block in backbone.transformer_layers:
        block.activation = block._feedforward_intermediate_dense.activation = ACTIVATIONS[config.hidden_act]
        block._self_attention_layer._dropout_layer.rate = config.attention_probs_dropout_prob
        block._self_attention_layer_norm.epsilon = block._feedforward_layer_norm.epsilon = config.layer_norm_eps
    return backbone


def backbone_pairs(backbone: keras_hub.models.BertBackbone,
                   with_pooler: bool) -> list[tuple[str, keras.Variable, bool]]:
    """(transformers BertModel parameter name, BertBackbone variable, is a linear weight), as keras-hub's own
    converter (keras_hub/src/utils/transformers/convert_bert.py) pairs them."""
    norm = backbone.get_layer("embeddings_layer_norm")
    pairs = [("embeddings.word_embeddings.weight", backbone.get_layer("token_embedding").embeddings, False),
             ("embeddings.position_embeddings.weight",
              backbone.get_layer("position_embedding").position_embeddings, False),
             ("embeddings.token_type_embeddings.weight", backbone.get_layer("segment_embedding").embeddings, False),
             ("embeddings.LayerNorm.weight", norm.gamma, False), ("embeddings.LayerNorm.bias", norm.beta, False)]
    for i, block in enumerate(backbone.transformer_layers):
        attention = block._self_attention_layer
        modules = {"attention.self.query": attention.query_dense, "attention.self.key": attention.key_dense,
                   "attention.self.value": attention.value_dense, "attention.output.dense": attention.output_dense,
                   "intermediate.dense": block._feedforward_intermediate_dense,
                   "output.dense": block._feedforward_output_dense}
        for name, layer in modules.items():
            pairs += [(f"encoder.layer.{i}.{name}.weight", layer.kernel, True),
                      (f"encoder.layer.{i}.{name}.bias", layer.bias, False)]
        for name, layer in {"attention.output.LayerNorm": block._self_attention_layer_norm,
                            "output.LayerNorm": block._feedforward_layer_norm}.items():
            pairs += [(f"encoder.layer.{i}.{name}.weight", layer.gamma, False),
                      (f"encoder.layer.{i}.{name}.bias", layer.beta, False)]
    if with_pooler:
        pooler = backbone.get_layer("pooled_dense")
        pairs += [("pooler.dense.weight", pooler.kernel, True), ("pooler.dense.bias", pooler.bias, False)]
    return pairs


def probe_batch(config, rows: int = 3, length: int = 12) -> dict[str, np.ndarray]:
    """A fixed small batch of token ids with some padding and both segments, for the logits check."""
    ids = np.random.default_rng(0).integers(1, config.vocab_size, size=(rows, length), dtype=np.int64)
    mask = np.ones((rows, length), dtype=np.int64)
    mask[1, length // 2:] = 0
    segments = np.zeros((rows, length), dtype=np.int64)
    segments[2, length // 2:] = min(1, config.type_vocab_size - 1)
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": segments}


def torch_logits(torch_model: nn.Module, batch: dict[str, np.ndarray]) -> np.ndarray:
    """The torch model's logits in eval mode (each module's train/eval mode restored after: a model may mix them)."""
    modes = [(module, module.training) for module in torch_model.modules()]
    device = next(torch_model.parameters()).device
    torch_model.eval()
    try:
        with torch.no_grad():
            inputs = {name: torch.as_tensor(np.asarray(batch[name]), dtype=torch.long, device=device)
                      for name in INPUT_NAMES}
            return torch_model(**inputs).logits.float().cpu().numpy().astype(np.float64)
    finally:
        for module, training in modes:
            module.training = training

