"""A trained model's scores on one labelled split of a dataset or file: `finetext evaluate`, and the held-back
figures of `finetext tune --final trial`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from finetext.artifacts import open_artifact
from finetext.config import DataConfig, TrainingConfig, build
from finetext.data.sources import load_labelled_data, take_subset
from finetext.errors import FinetextError
from finetext.inference.classifier import Classifier, LoadOptions
from finetext.inference.loader import load_classifier
from finetext.inference.score import SplitEvaluation, evaluate_with_logits


def evaluate_split(model_dir: str | Path, *, split: str | None = None, batch_size: int = 64, progress: bool = True,
                   trust_remote_code: bool = False, **data_options: Any) -> SplitEvaluation:
    """The split scored, its data source, whether the model is multi-label, and its scores.

    ``data_options`` are DataConfig fields (dataset, test_file, data_dir, text_column, ...); ``eval_samples``
    limits the scored split to a seeded subset. The split defaults to test when it has labels, else
    validation.
    """
    artifact = open_artifact(model_dir)
    clf = load_classifier(artifact, LoadOptions(trust_remote_code, precision="fp32"))  # the saved weights' scores
    saved = {"max_length": clf.max_length, "multi_label": clf.multi_label, "label_separator": clf.label_separator,
             "threshold": clf.threshold, "long_text": clf.long_text}
    if clf.long_text == "chunk" and data_options.get("long_text", "chunk") == "chunk":
        saved.update(stride=clf.stride, window_aggregation=clf.window_aggregation)
    data_cfg = build(DataConfig, {**saved, **data_options})
    if not data_cfg.has_source():
        raise FinetextError("no data to evaluate on.", "Pass --dataset NAME_OR_PATH or --test-file FILE.")
    seed = (artifact.config.training if artifact.config else TrainingConfig()).seed  # the run's, for its subsets
    data = load_labelled_data(data_cfg, seed=seed, label_names=clf.label_names)
    check_pairs(clf, data.has_pairs())
    clf = replace(clf, max_length=data_cfg.max_length, threshold=data_cfg.threshold, long_text=data_cfg.long_text,
                  stride=data_cfg.stride, window_aggregation=data_cfg.window_aggregation)
    chosen = split or next((s for s in ("test", "validation") if data.is_labelled(s)), None)
    if chosen is None or not data.is_labelled(chosen):
        raise FinetextError(f"no labelled {chosen or 'test or validation'} split in {data.source}.",
                            "Pass --split, or a --test-file with a label column.")
    frame = take_subset(data.splits[chosen], data_cfg.eval_samples, seed)
    report, _ = evaluate_with_logits(clf, frame, batch_size, progress, f"evaluate {chosen}")
    return SplitEvaluation(chosen, data.source, clf.multi_label, report)


def check_pairs(clf: Classifier, have_pairs: bool) -> None:
    if clf.accepts_pairs(have_pairs):
        return
    if have_pairs:
        raise FinetextError("this model was trained on single texts but text pairs were given.",
                            "Drop the second text.")
    raise FinetextError("this model was trained on sentence pairs but no second text was given.",
                        "Pass --text-pair (CLI) or --text-pair-column (files).")
