"""The model card (README.md of the artifact): what was trained on what, and how well it does."""

from __future__ import annotations

from finetext.config import DataConfig, ModelConfig, TrainConfig
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


def model_card(cfg: TrainConfig, metrics: RunMetrics) -> str:
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
library_name: transformers
pipeline_tag: text-classification
{base_model_line(m)}tags: [finetext, text-classification]
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


def base_model_line(m: ModelConfig) -> str:
    """Hub metadata: a base_model must be a model id, which scratch models and init_from directories are not."""
    return "" if m.is_scratch() or m.init_from else f"base_model: {m.model}\n"


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
