"""A training run with a fixed life cycle: setup -> train -> evaluate -> save -> cleanup."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import set_seed

from finetext import __version__
from finetext.artifacts import CHECKPOINTS, prepare_output_dir, save_artifact
from finetext.config import TrainConfig
from finetext.data.sources import LabelledData, load_labelled_data, resolved_data_config
from finetext.data.tokenize import tokenize_split
from finetext.errors import FinetextError
from finetext.evaluation.evaluate import evaluate_frame
from finetext.evaluation.model_card import model_card
from finetext.inference.predict import Classifier
from finetext.models.pretrained import load_classifier, load_tokenizer, resolve_model_path
from finetext.training.trainer_engine import FitResult, fit_with_trainer

log = logging.getLogger("finetext")


@dataclass
class TrainResult:
    """Where the model went and what it scored (the contents of metrics.json)."""

    output_dir: Path
    metrics: dict


def check_hardware(cfg: TrainConfig) -> None:
    """Refuse, before any work, what this machine cannot do."""
    precision = cfg.training.precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise FinetextError("--precision fp16 needs a CUDA GPU and none is available.",
                            "Use --precision bf16 (CPUs with bfloat16 support) or fp32.")
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise FinetextError("--precision bf16 is not supported by this GPU.", "Use --precision fp16 or fp32.")


class TrainingRun:
    def __init__(self, cfg: TrainConfig):
        if not cfg.data.has_source():
            raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
        self.cfg = cfg

    def setup(self) -> None:
        check_hardware(self.cfg)
        resolve_model_path(self.cfg.model.model)  # a bad model name fails before the data is read
        self.out = prepare_output_dir(self.cfg)
        seed = self.cfg.training.seed
        set_seed(seed)
        self.data: LabelledData = load_labelled_data(self.cfg.data, seed)
        if "train" not in self.data.splits:
            raise FinetextError("the data has no train split.", "Pass --train-file or a dataset with train.")
        epochs = self.cfg.training.resolved_epochs(len(self.data.splits["train"]))
        self.cfg = replace(self.cfg, data=resolved_data_config(self.cfg.data, self.data),
                           training=replace(self.cfg.training, epochs=epochs))
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.data.splits.items())
        log.info("data %s: %s; labels: %s", self.data.source, sizes, ", ".join(self.data.label_names))
        self.tokenizer = load_tokenizer(self.cfg.model)
        set_seed(seed)  # the new head's initialisation depends only on the seed
        self.model = load_classifier(self.cfg.model, self.data.label_names)
        max_length, padding = self.cfg.data.max_length, self.cfg.data.padding
        self.encoded = {split: tokenize_split(self.data.splits[split], self.tokenizer, max_length, padding)
                        for split in ("train", "validation")}

    def train(self) -> FitResult:
        started = time.perf_counter()
        self.fit = fit_with_trainer(
            self.model, self.tokenizer, self.encoded["train"], self.encoded["validation"], self.cfg.training,
            self.out / CHECKPOINTS, len(self.data.label_names), self.cfg.quiet,
        )
        self.fit.stats["wall_time_s"] = round(time.perf_counter() - started, 2)
        return self.fit

    def evaluate(self) -> dict:
        """Final validation report of the kept model, and the test split once, when it has labels."""
        clf = Classifier(self.fit.model.eval(), self.tokenizer, self.data.label_names, self.cfg.data.max_length)
        batch = self.cfg.training.eval_batch_size
        results = {"validation": evaluate_frame(clf, self.data.splits["validation"], batch, not self.cfg.quiet)}
        if self.data.is_labelled("test"):
            results["test"] = evaluate_frame(clf, self.data.splits["test"], batch, not self.cfg.quiet, "test")
        elif "test" in self.data.splits:
            log.info("the test split has no labels: not evaluated")
        self.final = results
        return results

    def metrics(self) -> dict:
        metrics = {
            "finetext_version": __version__,
            "label_names": self.data.label_names,
            "data": {"source": self.data.source, **{k: len(v) for k, v in self.data.splits.items()}},
            "parameters": _parameter_counts(self.fit.model),
            "train": self.fit.stats,
            "history": self.fit.history,
            "best": self.fit.best,
            "final": {"validation": self.final["validation"]},
        }
        if "test" in self.final:
            metrics["test"] = self.final["test"]
        return metrics

    def save(self) -> TrainResult:
        metrics = self.metrics()
        save_artifact(self.out, self.fit.model, self.tokenizer, self.cfg, metrics, model_card(self.cfg, metrics))
        return TrainResult(self.out, metrics)

    def cleanup(self) -> None:
        """Checkpoints are only for resuming; a finished run keeps just the artifact."""
        shutil.rmtree(self.out / CHECKPOINTS, ignore_errors=True)

    def run(self) -> TrainResult:
        self.setup()
        self.train()
        self.evaluate()
        result = self.save()
        self.cleanup()
        return result


def _parameter_counts(model) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
