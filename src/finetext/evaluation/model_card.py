"""The model card (README.md of the artifact): what was trained on what, and how well it does."""

from __future__ import annotations

from pathlib import Path

from finetext.config import DEFAULT_MODEL, DataConfig, ModelConfig, TrainConfig
from finetext.evaluation.run_metrics import RunMetrics, SplitScores
from finetext.models.strategies import STRATEGIES

METRIC_COLUMNS = ("accuracy", "f1", "precision", "recall", "mcc")


def results_table(sections: dict[str, SplitScores]) -> str:
    header = "| split | examples | " + " | ".join(METRIC_COLUMNS) + " |"
    rows = [header, "|" + " --- |" * (len(METRIC_COLUMNS) + 2)]
    for split, report in sections.items():
        values = " | ".join(f"{100 * report.score(m):.2f}" for m in METRIC_COLUMNS)
        rows.append(f"| {split} | {report.num_examples} | {values} |")
    return "\n".join(rows)


def model_card(cfg: TrainConfig, metrics: RunMetrics, example_text: str | None = None) -> str:
    """README.md of the artifact: the Hub's metadata header (card_metadata), then the results and settings.

    ``example_text`` (the training run passes its first validation text) becomes the Hub widget's example;
    None leaves the widget out."""
    f1_kind = metrics.final_validation.f1_average
    t, d, m = cfg.training, cfg.data, cfg.model
    params = metrics.parameters
    strategy = (f"{strategy_name(m)}: {params['trainable']:,} of {params['total']:,} parameters trained "
                f"({params['trainable_percent']:.2f}%)")
    weights = metrics.class_weights
    weights_line = ", ".join(f"{k} {v:.3g}" for k, v in weights.items()) if weights else "none"
    kind = f"multi-label (sigmoid per label, threshold {d.threshold:g})" if d.multi_label else "single-label"
    labels = ", ".join(f"`{name}`" for name in metrics.label_names)
    pair = f" paired with `{d.text_pair_column}`" if d.text_pair_column else ""
    return f"""---
{card_metadata(cfg, metrics, example_text)}
---

# Text classifier fine-tuned with finetext

{origin(m, metrics.data.source)} (text column `{d.text_column}`{pair},
label column `{d.label_column}`). Labels: {labels}.

## Results

Metrics in percent; F1 is {f1_kind}. Validation is the kept (best by `{t.metric_for_best_model}`) model.

{results_table(metrics.reports())}

## Training

| setting | value |
| --- | --- |
| strategy | {strategy} |
| pooling | {pooling_line(m)} |
| task | {kind} |
| class weights | {weights_line} |
| epochs | {t.epochs} |
| learning rate | {t.learning_rate} ({t.lr_scheduler}, warm-up {t.warmup}) |
| batch size | {t.batch_size} x {t.gradient_accumulation_steps} accumulation |
| weight decay | {t.weight_decay} |
| max length | {d.max_length} ({d.padding} padding) |
| long texts | {long_text_line(d, metrics)} |
| precision | {t.precision} |
| seed | {t.seed} |
| examples | train {metrics.data.sizes['train']}, validation {metrics.data.sizes['validation']} |
| train time | {metrics.train.wall_time_s} s |

The full configuration is in `finetext.yaml`, per-epoch history in `metrics.json`.

## Use

```python
{pipeline_code(m)}
```

or `finetext predict path/to/this/folder "some text"`.{adapter_note(m)}{windows_note(d)}
"""


def pooling_line(m: ModelConfig) -> str:
    if m.is_scratch() or m.pooling == "mean":
        return "mean of the last hidden states over the real tokens"
    if m.pooling == "cls":
        return "the checkpoint's [CLS] pooler"
    return f"that of `{m.init_from}`" if m.init_from else m.pooling


def long_text_line(d: DataConfig, metrics: RunMetrics) -> str:
    if d.long_text != "chunk":
        return f"truncated to {d.max_length} tokens"
    cap = d.train_windows_per_document
    counted = metrics.data.windows or {}
    windows = f"; train {counted['train']} windows" if "train" in counted else ""
    return (f"chunked: windows of {d.max_length} tokens sharing {d.stride}, {d.window_aggregation} of the windows' "
            f"probabilities per document; training kept {f'at most {cap}' if cap else 'every'} window(s) per "
            f"document{windows}")


def windows_note(d: DataConfig) -> str:
    if d.long_text != "chunk":
        return ""
    return (f"\n\nThis model reads long texts as overlapping windows of {d.max_length} tokens and combines their "
            f"probabilities ({d.window_aggregation}); `finetext predict`, `evaluate` and `serve` do that. "
            "`transformers.pipeline` knows nothing of windows: it reads a text as one sequence (call it with "
            f"`truncation=True, max_length={d.max_length}` for long texts, which keeps their first {d.max_length} "
            "tokens), so on longer texts its answers can differ.")


def strategy_name(m: ModelConfig) -> str:
    """The strategy with its own settings, as its registry entry states them: 'top_k (top 2 layers)'."""
    settings = STRATEGIES[m.strategy].card_settings
    return f"{m.strategy} ({settings(m)})" if settings else m.strategy


HUB_METRICS = {"accuracy": "accuracy", "f1": "f1", "precision": "precision", "recall": "recall",
               "mcc": "matthews_correlation"}
"""metrics.json's final scores and the Hub's metric ids they are published under (hf.co/metrics)."""

DATASET_LANGUAGES = {"stanfordnlp/imdb": "en", "nyu-mll/glue": "en", "fancyzhx/ag_news": "en",
                     "Yelp/yelp_review_full": "en", "SetFit/sst5": "en"}
"""The language of the known datasets (finetext.data.sources.KNOWN_DATASETS, by Hub id); other data: unknown."""

WIDGET_CHARACTERS = 500
"""The widget's example text is cut to about this many characters (at a space)."""


def card_metadata(cfg: TrainConfig, metrics: RunMetrics, example_text: str | None = None) -> str:
    """The card's YAML header, the metadata the Hugging Face Hub reads, built with huggingface_hub's ModelCardData
    (so ``huggingface_hub.ModelCard`` parses it back, model-index included).

    - library_name transformers, pipeline_tag text-classification, tags [finetext, text-classification];
    - base_model: the Hub id the run started from (hub_model_id), left out when there is none;
    - datasets and language: for a dataset finetext knows by name (its Hub id; English), left out for local data;
      license is left out (finetext cannot know it);
    - metrics and model-index: one result per final split (validation, and test when it was scored) with
      accuracy, f1, precision, recall and matthews_correlation (MCC) as fractions rounded to 4 places. The
      model-index name is the output folder's; the dataset's name/type are its Hub id, or for local data the
      file or folder name (never a path). The scores are on the examples the run used (eval_samples /
      test_samples may have subsampled the split; the card's body gives the counts);
    - widget: one example text (example_text, cut to WIDGET_CHARACTERS), omitted when None or when the
      model reads text pairs (the widget sends one text);
    - finetext: {label_names, multi_label}: the labels in id order under finetext's own key (config.json's
      id2label holds them too).
    """
    from huggingface_hub import EvalResult, ModelCardData

    d = cfg.data
    known = known_dataset(d)
    dataset_type, dataset_config = (known.hub_path, known.hub_config) if known else (local_data_name(d), None)
    dataset_name = f"{dataset_type} ({dataset_config})" if dataset_config else dataset_type
    f1_kind = metrics.final_validation.f1_average
    results = [
        EvalResult(task_type="text-classification", task_name="Text Classification", dataset_type=dataset_type,
                   dataset_name=dataset_name, dataset_config=dataset_config, dataset_split=split,
                   metric_type=hub_id, metric_value=round(float(report.score(name)), 4),
                   metric_name=f"{name.upper() if name == 'mcc' else name.capitalize()}"
                               + (f" ({f1_kind})" if name == "f1" and f1_kind else ""))
        for split, report in metrics.reports().items() for name, hub_id in HUB_METRICS.items()]
    extra: dict = {}
    if example_text and example_text.strip() and not d.text_pair_column:
        extra["widget"] = [{"text": shortened(example_text.strip(), WIDGET_CHARACTERS)}]
    extra["finetext"] = {"label_names": list(metrics.label_names), "multi_label": metrics.multi_label}
    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-classification", base_model=hub_model_id(cfg.model),
        datasets=[known.hub_path] if known else None,
        language=DATASET_LANGUAGES.get(known.hub_path) if known else None,
        tags=["finetext", "text-classification"], metrics=list(HUB_METRICS.values()),
        model_name=Path(cfg.output_dir).name or "finetext-model", eval_results=results, **extra)
    order = ["library_name", "pipeline_tag", "base_model", "datasets", "language", "tags", "metrics", "widget",
             "finetext"]
    return data.to_yaml(original_order=order)


def hub_model_id(m: ModelConfig) -> str | None:
    """The Hub id of the model the run started from, for base_model; None for scratch models, init_from runs
    (a local finetext model) and local folders that are no known copy of a Hub model. A known copy is the
    packaged all-MiniLM-L6-v2 and a folder of the Hugging Face cache (.../models--OWNER--NAME/snapshots/REV)."""
    if m.is_scratch() or m.init_from:
        return None
    path = Path(m.model).expanduser()
    if not path.exists():
        return m.model if _is_repo_id(m.model) else None  # resolve_model_path took it for a Hub id
    folder = path.resolve()
    if len(folder.parts) >= 3 and folder.parent.name == "snapshots" and folder.parent.parent.name.startswith(
            "models--"):
        owner_name = folder.parent.parent.name.removeprefix("models--").split("--")
        candidate = "/".join(owner_name)
        return candidate if len(owner_name) <= 2 and _is_repo_id(candidate) else None
    from finetext.models.pretrained import packaged_model_dir

    packaged = packaged_model_dir()
    return DEFAULT_MODEL if packaged is not None and packaged.resolve() == folder else None


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def known_dataset(d: DataConfig):
    """The finetext.data.sources.KnownDataset the run's data was named by, or None (files, folders)."""
    from finetext.data.sources import KNOWN_DATASETS

    if not d.dataset or Path(d.dataset).expanduser().exists():
        return None
    return KNOWN_DATASETS.get(d.dataset.lower())


def local_data_name(d: DataConfig) -> str:
    """Local data's name for the card: the dataset folder's or the training file's name, never its path."""
    source = d.dataset or d.train_file or d.validation_file or d.test_file or "local data"
    return Path(source).expanduser().name or "local data"


def shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else text[:limit]) + " ..."


def origin(m: ModelConfig, source: str) -> str:
    """How the model began and what it was trained on: the card's first sentence, up to the columns."""
    if m.init_from:
        family = "a scratch GloVe transformer" if m.is_scratch() else f"fine-tuned from `{m.model}`"
        return f"Fine-tuned from the finetext model in `{m.init_from}` ({family}) on `{source}`"
    if m.is_scratch():
        return (f"A transformer trained from scratch on GloVe word vectors (architecture in `config.json`), "
                f"on `{source}`")
    return f"Fine-tuned from `{m.model}` on `{source}`"


def pipeline_code(m: ModelConfig) -> str:
    lines = ["from transformers import pipeline",
             'classify = pipeline("text-classification", model="path/to/this/folder")', 'classify("some text")']
    if m.is_scratch() or m.init_from or m.pooling == "mean":  # finetext's own model types
        lines.insert(0, "import finetext.architectures  # registers finetext's model types with transformers")
    return "\n".join(lines)


def adapter_note(m) -> str:
    if m.strategy != "lora":
        return ""
    if m.lora_merge:
        return ("\n\nThe weights above have the LoRA adapter merged in. The adapter alone (a few MB) is in "
                "`adapter/`:\n`peft.PeftModel.from_pretrained(base_model, 'path/to/this/folder/adapter')`.")
    return ("\n\nThis folder holds only the LoRA adapter (`adapter/`), not merged weights: `finetext predict` "
            "and `finetext evaluate` load the base model and apply it; `transformers.pipeline` needs a merged "
            "model (train with `lora_merge: true`).")
