"""--method embeddings: the pretrained model's mean-pooled embeddings, once, and a logistic regression per fold.

This is the head strategy's model (a linear classifier on the frozen encoder's pooled vector) fitted exactly
instead of by gradient steps, which is what makes it cheap: the encoder runs once over the data, and each fold
only fits a regression on the cached vectors. Sentence pairs are read the way sentence-transformers' classifier
reads them, (u, v, |u - v|, u * v), since an embedder trained on single sentences has no joint view of a pair.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from finetext.auditing.rows import AuditRows
from finetext.auditing.store import EMBEDDINGS
from finetext.config import TrainConfig
from finetext.errors import FinetextError
from finetext.storage import write_bytes

log = logging.getLogger("finetext")

REGULARISATION = 1.0
"""Logistic regression's C on standardised features (scikit-learn's default)."""


def check_embeddings_model(cfg: TrainConfig) -> None:
    if cfg.model.is_scratch() and not cfg.model.init_from:
        raise FinetextError("--method embeddings needs a pretrained model: a new scratch model's embeddings are "
                            "random.", "Use --method train (each fold trains the scratch model), or a --model.")


class EmbeddingFolds:
    """Probabilities of each held-out fold from a regression fitted on the other folds' embeddings."""

    def __init__(self, cfg: TrainConfig, rows: AuditRows, out: Path, progress: bool):
        check_embeddings_model(cfg)
        self.cfg, self.rows, self.out, self.progress = cfg, rows, out, progress
        self._features: np.ndarray | None = None

    def prepare(self) -> None:
        started = time.perf_counter()
        rows = len(self.features())
        log.info("embeddings of %d rows ready in %.1f s", rows, time.perf_counter() - started)

    def features(self) -> np.ndarray:
        """The rows' embeddings: computed once, kept in OUTPUT_DIR/embeddings.npy for a resumed audit."""
        if self._features is None:
            cached = self.out / EMBEDDINGS
            if cached.is_file():
                self._features = np.load(cached)
            else:
                self._features = self.embed_rows()
                buffer = io.BytesIO()
                np.save(buffer, self._features)
                write_bytes(cached, buffer.getvalue())
        return self._features

    def embed_rows(self) -> np.ndarray:
        frame = self.rows.frame
        embed = embedder(self.cfg, self.rows.data.label_names, self.rows.data.multi_label, self.progress)
        u = embed(frame["text"].tolist())
        if "text_pair" not in frame.columns:
            return u
        v = embed(frame["text_pair"].tolist())
        return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)

    def fold(self, fold: int) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        features, labels, held = self.features(), self.rows.labels, self.rows.folds == fold
        regression = LogisticRegression(C=REGULARISATION, max_iter=2000)
        if labels.ndim == 2:
            head = make_pipeline(StandardScaler(), OneVsRestClassifier(regression)).fit(features[~held], labels[~held])
            return head.predict_proba(features[held])
        head = make_pipeline(StandardScaler(), regression).fit(features[~held], labels[~held])
        probabilities = np.zeros((int(held.sum()), len(self.rows.data.label_names)))
        probabilities[:, head.classes_.astype(int)] = head.predict_proba(features[held])  # absent classes: 0
        return probabilities


def embedder(cfg: TrainConfig, label_names: list[str], multi_label: bool, progress: bool):
    """texts -> the model's pooled vectors (fp32), length-sorted batches of eval_batch_size."""
    import torch
    from tqdm.auto import tqdm

    from finetext.data.tokenize import encode
    from finetext.models.factory import load_model

    tokenizer, model = load_model(replace(cfg.model, pooling="mean", strategy="head"), cfg.data.max_length,
                                  label_names, multi_label)
    if not hasattr(model, "embed"):
        raise FinetextError(f"--method embeddings needs a mean-pooled model; {cfg.model.init_from or cfg.model.model} "
                            "is not one.", "Use --method train.")
    model.eval()
    batch_size = cfg.training.eval_batch_size

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        encoded = encode(tokenizer, texts, None, cfg.data.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")[::-1]
        vectors = np.zeros((len(texts), model.config.encoder.hidden_size), dtype=np.float32)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        for start in tqdm(range(0, len(order), batch_size), desc="embed", unit="batch", disable=not progress):
            index = order[start:start + batch_size]
            batch = tokenizer.pad({k: [encoded[k][i] for i in index] for k in keys}, return_tensors="pt")
            vectors[index] = model.embed(**batch).float().numpy()
        return vectors
    return embed
