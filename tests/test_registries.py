"""Strategies and engines are registries: one list of names that config, the CLI, compare and the docs read, and
a new strategy or engine is one module plus one registration (the toy ones below train end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_run

import finetext
from finetext.cli import build_parser
from finetext.comparison import parse_strategies
from finetext.config import config_from_flat, docs_markdown
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import HistoryEntry, SplitScores
from finetext.models.strategies import STRATEGIES
from finetext.models.strategies.base import Strategy, refuse_random_weights
from finetext.training.engines import ENGINES, EngineSpec
from finetext.training.fit import FitResult, PreparedRun
from finetext.training.stopwatch import Stopwatch


def flag_choices(command: str, dest: str) -> list[str]:
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    return list(next(a for a in parser._actions if a.dest == dest).choices)


def test_the_registries_are_the_one_list_of_names():
    assert flag_choices("train", "strategy") == list(STRATEGIES)
    assert parse_strategies(None) == [name for name, s in STRATEGIES.items() if s.in_compare_default]
    assert flag_choices("train", "engine") == list(ENGINES)
    docs = docs_markdown()
    for name, entry in [*STRATEGIES.items(), *ENGINES.items()]:
        assert f"'{name}': {entry.summary()}" in docs
    learning_rates = {name: config_from_flat({"strategy": name}).model.default_learning_rate() for name in STRATEGIES}
    # docs/decisions.md
    assert learning_rates == {"full": 5e-5, "head": 1e-3, "top_k": 5e-5, "lora": 5e-4, "fewshot": 2e-5}
    with pytest.raises(FinetextError, match="engine must be one of trainer, native, keras; got 'jax'"):
        config_from_flat({"engine": "jax"})


@pytest.mark.parametrize(("values", "message"), [
    ({"model": "scratch", "strategy": "lora"},
     "--strategy lora freezes weights, but a new scratch model's are random: only --strategy full trains it"),
    ({"engine": "trainer", "save_steps": 10},
     "save_steps is a native-engine option: the Trainer checkpoints at each evaluation"),
])
def test_a_registered_refusal_stops_the_config_with_its_reason(values, message):
    with pytest.raises(FinetextError, match=message):
        config_from_flat(values)


# --- A toy strategy: BitFit (train the biases and the head), written as a newcomer would -----------------------

def train_biases_and_head(model, cfg):
    from finetext.models.strategies.layers import head_parameter_names, set_trainable

    set_trainable(model, {n for n, _ in model.named_parameters() if n.endswith(".bias")} | head_parameter_names(model))
    return model


BITFIT = Strategy(name="bitfit", description="the biases plus the head", learning_rate=2e-3,
                  apply=train_biases_and_head, refuse=refuse_random_weights)


def test_a_strategy_is_one_module_and_one_registration(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(STRATEGIES, "bitfit", BITFIT)
    assert "bitfit" in flag_choices("train", "strategy") and "'bitfit': the biases plus the head" in docs_markdown()
    result = finetext.train(tiny_run(tiny_model, tmp_path / "bitfit", dataset="sst2", strategy="bitfit", epochs=1,
                                     learning_rate=None))
    counts = result.metrics["parameters"]
    assert counts["strategy"] == "bitfit" and 0 < counts["trainable"] < counts["total"]
    assert "learning_rate: 0.002" in (result.output_dir / "finetext.yaml").read_text()
    assert "| strategy | bitfit: " in (result.output_dir / "README.md").read_text()
    assert parse_strategies("full,bitfit") == ["full", "bitfit"]


# --- A toy engine: a plain PyTorch loop, one evaluation at the end, no checkpoints ------------------------------

class PlainLoop:
    def latest_checkpoint(self, folder: Path) -> Path | None:
        return None

    def fit(self, run: PreparedRun) -> FitResult:
        import torch
        from torch.utils.data import DataLoader
        from transformers import DataCollatorWithPadding

        cfg, model = run.config.training, run.model
        collate = DataCollatorWithPadding(run.tokenizer)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        watch, losses = Stopwatch(), []
        model.train()
        for batch in DataLoader(run.encoded_train, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate):
            labels = batch.pop("labels")
            loss = run.objective.loss(model(**batch).logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        train_seconds = watch.training_seconds()
        with watch.paused(), torch.inference_mode():
            model.eval()
            batches = list(DataLoader(run.encoded_validation, batch_size=cfg.eval_batch_size, collate_fn=collate))
            logits = torch.cat([model(**{k: v for k, v in b.items() if k != "labels"}).logits for b in batches])
            labels = torch.cat([b["labels"] for b in batches])
        validation = SplitScores(loss=run.objective.loss(logits, labels).item(), num_examples=len(labels),
                                 **run.objective.metrics(logits.numpy(), labels.numpy()))
        entry = HistoryEntry(epoch=1.0, step=len(losses), train_loss=sum(losses) / len(losses),
                             train_seconds=round(train_seconds, 2), validation=validation)
        stats = {"train_runtime_s": round(watch.elapsed(), 2), "train_loss": entry.train_loss,
                 "global_steps": len(losses), "epochs_completed": 1.0, "num_processes": 1}
        return FitResult(model, [entry], entry, stats, [])


def refuse_early_stopping(cfg) -> None:
    if cfg.early_stopping_patience:
        raise FinetextError("the plain engine evaluates once: early_stopping_patience needs more.")


def test_an_engine_is_one_module_and_one_registration(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(ENGINES, "plain", EngineSpec("plain", "a plain PyTorch loop", f"{__name__}:PlainLoop",
                                                     refuse=refuse_early_stopping))
    assert "plain" in flag_choices("train", "engine")
    with pytest.raises(FinetextError, match="the plain engine evaluates once"):
        config_from_flat({"engine": "plain", "early_stopping_patience": 2})
    result = finetext.train(tiny_run(tiny_model, tmp_path / "plain", dataset="sst2", engine="plain", epochs=1))
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["train"]["engine"] == "plain" and metrics["train"]["global_steps"] == 6  # 96 examples / 16
    assert len(metrics["history"]) == 1 and metrics["final"]["validation"]["num_examples"] == 48
    assert (result.output_dir / "report.html").is_file()
    assert len(finetext.predict(result.output_dir, ["a gem of a film"])) == 1
