"""The fewshot strategy's training (models/strategies/fewshot.py registers it): SetFit's method for a few
labelled examples per class, on finetext's mean-pooled model.

1. Contrastive fine-tuning of the body: pairs of training texts, labelled 1 when they share a label and 0 when
   they do not, train the encoder so that the cosine similarity of their mean-pooled embeddings approaches the
   pair's label (sentence-transformers' CosineSimilarityLoss and SentenceTransformerTrainer).
2. A logistic regression (scikit-learn; one-vs-rest for multi-label data) fitted on the embeddings of the
   training texts becomes the linear classifier of the model, exactly: the artifact is an ordinary finetext
   model whose softmax (sigmoid) gives the regression's probabilities, so predict, evaluate, serve, export and
   transformers.pipeline work as for any other strategy.

It replaces the engine's loop (Strategy.fit) and writes no checkpoints: it takes minutes, and an interrupted run
is started again. The pair sampler is finetext's (seeded; SetFit's default "oversampling" count, capped at
fewshot_pairs positive and as many negative pairs per example, so that 64 examples per class stay quick).
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np

from finetext.errors import FinetextError

if TYPE_CHECKING:
    from transformers.trainer_utils import TrainOutput

    from finetext.training.fit import FitResult, PreparedRun

log = logging.getLogger("finetext")

ENUMERATED_PAIRS_LIMIT = 3_000
"""Up to this many training texts every pair is listed (SetFit's way); above it pairs are drawn at random."""


def contrastive_pairs(labels: np.ndarray, per_example: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(index pairs, targets 1.0/0.0): as many positive as negative pairs, each side SetFit's oversampled count
    (the larger side's size, the smaller side's pairs repeated) capped at per_example x the number of texts.
    Positive means the same label, or, for multi-label rows (0/1 vectors), at least one label in common."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    if n <= ENUMERATED_PAIRS_LIMIT:
        first, second = np.triu_indices(n, k=1)
    else:
        first, second = rng.integers(0, n, size=(2, 50 * n))
        keep = first != second
        first, second = first[keep], second[keep]
    multi_label = labels.ndim == 2
    same = (labels[first] * labels[second]).sum(axis=1) > 0 if multi_label else labels[first] == labels[second]
    sides = [np.flatnonzero(same), np.flatnonzero(~same)]
    sides = [side for side in sides if len(side)]
    if len(sides) < 2:
        raise FinetextError("the few-shot strategy needs texts with different labels and texts with the same label "
                            f"({n} training texts give only one kind of pair).",
                            "Add at least two examples of each of two labels.")
    count = min(max(len(side) for side in sides), per_example * n)
    chosen = [np.resize(rng.permutation(side), count) for side in sides]  # resize repeats a short side
    rows = np.concatenate(chosen)
    targets = np.concatenate([np.ones(count), np.zeros(count)]).astype(np.float32)
    order = rng.permutation(len(rows))
    pairs = np.stack([first[rows], second[rows]], axis=1)
    return pairs[order], targets[order]


def fit_fewshot(run: PreparedRun) -> FitResult:
    """Contrastive body training, then the logistic-regression head; one evaluation of validation."""
    from finetext.training.fit import FitResult, kept_entry

    cfg, data = run.config, run.data
    if "text_pair" in data.splits["train"].columns:
        raise FinetextError("--strategy fewshot embeds single texts; this data has sentence pairs, which need the "
                            "two texts read together.", "Use --strategy full or lora for sentence-pair tasks.")
    from accelerate import PartialState

    if PartialState().num_processes > 1:
        raise FinetextError("--strategy fewshot trains on one process; it was started on several.",
                            "Run it with plain `finetext train` (it takes a minute or two).")
    if cfg.data.long_text == "chunk":
        raise FinetextError("--strategy fewshot embeds whole texts: --long-text chunk does not apply to it.",
                            "Drop --long-text chunk (few-shot texts are read up to --max-length tokens).")
    started = time.perf_counter()
    train = data.splits["train"]
    texts = train["text"].tolist()
    labels = label_matrix(train["label"])
    body = train_body(run, texts, labels)
    body_seconds = time.perf_counter() - started
    fit_head(run, texts, labels)
    train_seconds = time.perf_counter() - started
    entry = evaluate_validation(run, epoch=1.0, step=body.global_step, train_loss=body.training_loss,
                                seconds=train_seconds)
    log.info("fewshot: body %.1f s (%d pair steps), head %.1f s", body_seconds, body.global_step,
             train_seconds - body_seconds)
    history = [entry]
    stats = {"engine": "fewshot (sentence-transformers)", "train_runtime_s": round(train_seconds, 2),
             "train_loss": round(body.training_loss, 5), "global_steps": body.global_step,
             "epochs_completed": float(cfg.training.epochs), "num_processes": 1}
    return FitResult(run.model, history, kept_entry(history, cfg.training.metric_for_best_model, True), stats)


def label_matrix(column) -> np.ndarray:
    """Label ids (single-label) or 0/1 rows (multi-label) as an array."""
    from finetext.data.sources import label_array

    return np.asarray(label_array(column))


def train_body(run: PreparedRun, texts: list[str], labels: np.ndarray) -> TrainOutput:
    """Contrastive fine-tuning of run.model's encoder through a SentenceTransformer that shares it; the trainer's
    own summary (global_step, training_loss)."""
    import datasets
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    cfg = run.config
    training = cfg.training
    pairs, targets = contrastive_pairs(labels, cfg.model.fewshot_pairs, training.seed)
    log.info("fewshot: %s contrastive pairs (%s positive) from %d texts", f"{len(pairs):,}",
             f"{int(targets.sum()):,}", len(texts))
    dataset = datasets.Dataset.from_dict({"sentence_1": [texts[i] for i in pairs[:, 0]],
                                          "sentence_2": [texts[j] for j in pairs[:, 1]], "label": targets})
    with tempfile.TemporaryDirectory(prefix="finetext-fewshot-") as scratch:
        body = SentenceTransformer(modules=sentence_modules(run, scratch), device=str(run.model.device))
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, per_device_train_batch_size=training.batch_size, num_train_epochs=training.epochs,
            learning_rate=training.learning_rate, weight_decay=training.weight_decay,
            warmup_steps=training.warmup if training.warmup_is_ratio() else int(training.warmup),  # <1: a ratio
            lr_scheduler_type=training.lr_scheduler, max_grad_norm=training.max_grad_norm, seed=training.seed,
            bf16=training.precision == "bf16", save_strategy="no", report_to=[],
            logging_steps=training.logging_steps, disable_tqdm=cfg.quiet, dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available())
        trainer = SentenceTransformerTrainer(model=body, args=args, train_dataset=dataset,
                                             loss=CosineSimilarityLoss(body))
        return trainer.train()


def sentence_modules(run: PreparedRun, scratch: str) -> list:
    """Transformer -> mean Pooling (-> Normalize), the Transformer holding run.model's own encoder, so training the
    SentenceTransformer trains the model that is saved."""
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from transformers import logging as hf_logging

    encoder = run.model.encoder
    encoder.save_pretrained(scratch)  # sentence-transformers builds its module from a directory...
    run.tokenizer.save_pretrained(scratch)
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # (the copy has no [CLS] pooler, which its loader would report at length)
    try:
        transformer = Transformer(scratch, max_seq_length=run.config.data.max_length)
    finally:
        hf_logging.set_verbosity(previous)
    transformer.model = encoder  # ...then uses the live encoder, not its copy
    modules = [transformer, Pooling(encoder.config.hidden_size, pooling_mode="mean")]
    return modules + [Normalize()] if run.model.config.normalize else modules


def embeddings(run: PreparedRun, texts: list[str]):
    """The model's own pooled vectors (MeanPoolingForSequenceClassification.embed), in texts' order."""
    import torch

    from finetext.data.tokenize import encode

    model, batch_size = run.model.eval(), run.config.training.eval_batch_size
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            encoded = encode(run.tokenizer, texts[start:start + batch_size], None, run.config.data.max_length)
            batch = run.tokenizer.pad(dict(encoded), return_tensors="pt").to(model.device)
            out.append(model.embed(**batch).float().cpu().numpy())
    return np.concatenate(out)


def fit_head(run: PreparedRun, texts: list[str], labels: np.ndarray) -> None:
    """Logistic regression on the embeddings, written into the model's classifier."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    features = embeddings(run, texts)
    num_labels = run.model.config.num_labels
    weight, bias = np.zeros((num_labels, features.shape[1])), np.full(num_labels, -30.0)  # absent classes: never
    if labels.ndim == 2:
        if run.objective.class_weights:
            raise FinetextError("--strategy fewshot has no class weights for multi-label data.",
                                "Drop --class-weights.")
        head = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(features, labels)
        for i, estimator in enumerate(head.estimators_):
            weight[i], bias[i] = binary_row(estimator, features.shape[1])
    else:
        weights = run.objective.class_weights
        head = LogisticRegression(max_iter=1000, class_weight=dict(enumerate(weights)) if weights else None)
        head.fit(features, labels)
        classes = head.classes_.astype(int)
        if len(classes) == 2:  # one row of coefficients: the log-odds of classes[1] against classes[0]
            weight[classes[0]], bias[classes[0]] = 0.0, 0.0
            weight[classes[1]], bias[classes[1]] = head.coef_[0], head.intercept_[0]
        else:
            weight[classes], bias[classes] = head.coef_, head.intercept_
    with torch.no_grad():
        run.model.classifier.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        run.model.classifier.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def binary_row(estimator, dim: int) -> tuple[np.ndarray, float]:
    """A one-vs-rest estimator's log-odds of its label; a label always (never) present in train: +30 (-30)."""
    if not hasattr(estimator, "coef_"):  # scikit-learn's constant predictor for a label seen with one value only
        return np.zeros(dim), 30.0 if float(np.ravel(estimator.y_)[0]) else -30.0
    return estimator.coef_[0], float(estimator.intercept_[0])


def evaluate_validation(run: PreparedRun, epoch: float, step: int, train_loss: float, seconds: float):
    """The validation scores of the trained model, as the engines log them (one history entry)."""
    from finetext.evaluation.run_metrics import HistoryEntry, SplitScores
    from finetext.inference.classifier import Classifier
    from finetext.inference.predict import predict_logits
    from finetext.training.fit import log_evaluation

    cfg, data = run.config, run.data
    frame = data.splits["validation"]
    clf = Classifier(run.model, run.tokenizer, data.label_names, cfg.data.max_length, cfg.data.threshold,
                     multi_label=data.multi_label)
    logits = predict_logits(clf, frame["text"].tolist(), None, cfg.training.eval_batch_size, progress=False)
    metrics = run.objective.validation_scores(logits, label_matrix(frame["label"]).copy())  # as the engines score
    count = metrics.pop("num_examples")
    scores = SplitScores(**{k: round(v, 5) for k, v in metrics.items()}, num_examples=count)
    log_evaluation(epoch, step, scores)
    entry = HistoryEntry(epoch=epoch, step=step, train_loss=round(train_loss, 5), train_seconds=round(seconds, 2),
                         validation=scores)
    if run.on_evaluation is not None:
        run.on_evaluation(entry)
    return entry


