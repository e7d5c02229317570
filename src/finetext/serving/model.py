"""The model a server runs: loaded from its directory with the backend and precision the server keeps, what
GET /info says about it, and the predict function the Batcher calls. Imports torch: the app imports this module
only when it loads the model, so the server answers /health and /ready while torch is still loading."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from finetext.artifacts import open_artifact
from finetext.inference.backend_choice import serving_workload, with_backend
from finetext.inference.classifier import Classifier
from finetext.inference.loader import load_classifier_dir
from finetext.inference.precision import serving_precision
from finetext.inference.predict import predict_logits, predictions_from_logits
from finetext.serving.settings import ServeConfig
from finetext.version import __version__


@dataclass
class LoadedModel:
    clf: Classifier
    info: dict[str, Any]
    seconds: float
    """Time taken by load_model."""

    def predictor(self, batch_size: int):
        return predictor(self.clf, batch_size)

    def warm_up_input(self) -> tuple[list[str], list[str] | None]:
        """One text (and its pair, for a pair model) for the prediction that warms the server up."""
        return ["warm-up"], ["warm-up"] if self.clf.text_pair_column else None


def load_model(model_dir: str, cfg: ServeConfig, clf: Classifier | None = None) -> LoadedModel:
    started = time.perf_counter()
    if cfg.workers > 1:
        share_cores(cfg.workers)
    clf = clf or load_classifier_dir(model_dir, cfg.trust_remote_code, cfg.precision)
    workload = serving_workload(clf)
    clf = with_backend(clf, model_dir, cfg.backend, workload)
    clf = replace(clf, precision=serving_precision(clf, workload))
    return LoadedModel(clf, model_info(model_dir, clf, cfg), time.perf_counter() - started)


def share_cores(workers: int) -> None:
    """Each of the workers' processes takes its share of the cores (torch's threads, and onnxruntime's, which
    follow them): N workers each using every core would fight over them (measured: docs/performance.md)."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads() // workers))


def model_info(model_dir: str, clf: Classifier, cfg: ServeConfig) -> dict[str, Any]:
    artifact = open_artifact(model_dir)
    return {
        "model": artifact.config.model.model if artifact.config else artifact.path.name,
        "model_dir": str(artifact.path.resolve()),
        "architecture": (clf.model.config.architectures or [None])[0],
        "backend": clf.backend,
        "labels": clf.label_names,
        "max_length": clf.max_length,
        "long_text": ({"mode": "chunk", "stride": clf.stride, "window_aggregation": clf.window_aggregation}
                      if clf.long_text == "chunk" else {"mode": "truncate"}),
        "text_pairs": clf.text_pair_column is not None,
        "multi_label": clf.multi_label,
        "precision": clf.precision,
        "precision_requested": cfg.precision,
        "max_batch_size": cfg.max_batch_size,
        "limits": cfg.limits(),
        "finetext_version": __version__,
    }


def predictor(clf: Classifier, batch_size: int):
    def predict(texts: list[str], pairs: list[str] | None) -> list[dict]:
        logits = predict_logits(clf, texts, pairs, batch_size, progress=False)
        records = predictions_from_logits(logits, clf.label_names, clf.multi_label, clf.threshold)
        return [{"label": r["label"], "score": r["score"], "scores": r["probabilities"],
                 **({"labels": r["labels"]} if "labels" in r else {})} for r in records]
    return predict
