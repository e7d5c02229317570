"""`finetext compare`: train one model per strategy on the same data and seed, then tabulate and chart them.

Each strategy trains in its own child process (`python -m finetext train`), one after the other, so that
its peak memory (the child's maximum resident set size, from wait4) and its time are its own. The runs
land in OUTPUT_DIR/<strategy>/ as ordinary finetext artifacts; the comparison is written beside them as
comparison.csv, comparison.md and comparison.png.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from finetext.artifacts import ADAPTER, METRICS
from finetext.config import TrainConfig, config_from_flat, flatten
from finetext.data.files import write_table
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import RunMetrics, read_run_metrics
from finetext.models.strategies import STRATEGIES
from finetext.storage import staged_file, write_text

log = logging.getLogger("finetext")

CSV, MARKDOWN, CHART = "comparison.csv", "comparison.md", "comparison.png"
DEFAULT_OUTPUT_DIR = "outputs/compare"


def parse_strategies(value: str | list[str] | None) -> list[str]:
    """The strategies to compare, from a comma-separated string or a list; None: every registered one that runs
    by default (fewshot, for a few examples per class, only when named)."""
    if value is None:
        return [name for name, strategy in STRATEGIES.items() if strategy.in_compare_default]
    names = [s.strip() for s in (value.split(",") if isinstance(value, str) else value) if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise FinetextError(f"unknown strategy '{', '.join(unknown) or value}'.",
                            f"Use a comma-separated list of {', '.join(STRATEGIES)}.")
    if len(set(names)) != len(names):
        raise FinetextError(f"a strategy is listed twice in '{','.join(names)}'.", "List each once.")
    return names


@dataclass
class StrategyRun:
    strategy: str
    output_dir: Path
    wall_s: float
    peak_rss_mb: float
    metrics: RunMetrics


def compare(values: dict[str, Any], strategies: list[str]) -> Path:
    """Train every strategy with the flat config ``values``; write the comparison; return its directory."""
    values = {"output_dir": DEFAULT_OUTPUT_DIR, **flatten(values)}
    for key in ("strategy", "resume"):
        if values.get(key) not in (None, False):
            raise FinetextError(f"compare sets {key} itself.", f"Drop --{key} and use --strategies.")
    cfg = config_from_flat(values)  # every option is checked before the first run starts...
    check_strategies(cfg, strategies)  # ...and so is every strategy against the model's layers
    out = Path(cfg.output_dir).expanduser()
    if (out / CSV).exists() and not cfg.overwrite_output_dir:
        raise FinetextError(f"{out} already holds a comparison.",
                            "Pass --overwrite-output-dir to redo it, or choose another --output-dir.")
    out.mkdir(parents=True, exist_ok=True)
    runs = [train_strategy(out, values, strategy) for strategy in strategies]
    table = comparison_table(runs)
    write_comparison(out, table, values, strategies)
    return out


def check_strategies(cfg: TrainConfig, strategies: list[str]) -> None:
    """Fail now, not hours later, on a strategy the model cannot take: the option checks of each strategy, then
    each strategy's model check (top_k against the layer count, lora's target modules) on the model built on
    the meta device (no weights)."""
    models = [replace(cfg.model, strategy=strategy) for strategy in strategies]  # each strategy's refusals
    model_checks = [(STRATEGIES[m.strategy].check_model, m) for m in models if STRATEGIES[m.strategy].check_model]
    if not model_checks:
        return
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from finetext.models.factory import config_source

    source = config_source(cfg.model)
    if source is None:  # a new scratch model: the strategies' refusals above allow only those that train it whole
        return
    config = AutoConfig.from_pretrained(source, num_labels=2, trust_remote_code=cfg.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config,
                                                               trust_remote_code=cfg.model.trust_remote_code)
    for check, model_cfg in model_checks:
        check(model, model_cfg)


def train_strategy(out: Path, values: dict[str, Any], strategy: str) -> StrategyRun:
    run_dir = out / strategy
    config = {**values, "strategy": strategy, "output_dir": str(run_dir)}
    log.info("compare: training %s -> %s", strategy, run_dir)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=out, prefix=f".{strategy}-", delete=False) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    try:
        started = time.perf_counter()
        code, usage = run_child([sys.executable, "-m", "finetext", "train", handle.name])
        wall = time.perf_counter() - started
    finally:
        Path(handle.name).unlink(missing_ok=True)
    if code < 0:
        raise FinetextError(f"the {strategy} run was killed by signal {-code} "
                            f"({signal.Signals(-code).name}; SIGKILL often means out of memory).",
                            "Free memory or use smaller --batch-size / --max-length, then run compare again.")
    if code != 0:
        raise FinetextError(f"the {strategy} run failed (exit code {code}); its error is printed above.",
                            "Fix it and run compare again (with --overwrite-output-dir).")
    metrics = read_run_metrics(run_dir / METRICS)
    return StrategyRun(strategy, run_dir, round(wall, 1), round(usage.ru_maxrss / 1024, 1), metrics)


def run_child(command: list[str]) -> tuple[int, Any]:
    """Run a command to completion: its exit code (negative: killed by that signal) and resource usage.

    If this process is interrupted or terminated meanwhile, the child is interrupted too and waited for,
    so no training run is left behind."""
    child = subprocess.Popen(command)
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
    return child.returncode, usage


def directory_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def comparison_table(runs: list[StrategyRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        m = run.metrics
        row = {
            "strategy": run.strategy,
            "trainable_params": m.parameters["trainable"],
            "total_params": m.parameters["total"],
            "trainable_percent": m.parameters["trainable_percent"],
            "val_accuracy": round(100 * m.final_validation.accuracy, 2),
            "val_f1": round(100 * m.final_validation.f1, 2),
        }
        if m.test is not None:
            row |= {"test_accuracy": round(100 * m.test.accuracy, 2), "test_f1": round(100 * m.test.f1, 2)}
        adapter = run.output_dir / ADAPTER
        row |= {
            "train_time_s": m.train.train_runtime_s,
            "train_samples_per_s": m.train.train_samples_per_second,
            "wall_time_s": run.wall_s,
            "peak_rss_mb": run.peak_rss_mb,
            "size_on_disk_mb": round(directory_mb(run.output_dir), 2),
            "adapter_mb": round(directory_mb(adapter), 2) if adapter.is_dir() else None,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def write_comparison(out: Path, table: pd.DataFrame, values: dict[str, Any], strategies: list[str]) -> None:
    write_table(table, out / CSV)
    write_text(out / MARKDOWN, comparison_markdown(table, values, strategies))
    write_chart(table, out / CHART)


COLUMN_TITLES = {
    "strategy": "strategy", "trainable_params": "trainable params", "total_params": "total params",
    "trainable_percent": "trainable %", "val_accuracy": "val accuracy", "val_f1": "val F1",
    "test_accuracy": "test accuracy", "test_f1": "test F1", "train_time_s": "train time (s)",
    "train_samples_per_s": "samples/s", "wall_time_s": "wall time (s)", "peak_rss_mb": "peak RSS (MB)",
    "size_on_disk_mb": "size on disk (MB)", "adapter_mb": "adapter (MB)",
}


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float) and value >= 1000:
            return f"{value:,.0f}"
        return f"{value:g}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(COLUMN_TITLES[c] for c in table.columns) + " |"
    lines = [header, "|" + " --- |" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def comparison_markdown(table: pd.DataFrame, values: dict[str, Any], strategies: list[str]) -> str:
    return f"""# Strategy comparison

`finetext compare --strategies {','.join(strategies)} {command_flags(values)}`

Accuracy and F1 in percent (validation: the kept model of each run). Train time is the training loop
(evaluations included); wall time is the whole run (loading, tokenizing, final scoring, saving); peak RSS
is the run's process; size on disk is its output directory (a LoRA run's merged model plus its adapter).

{markdown_table(table)}
"""


def command_flags(values: dict[str, Any]) -> str:
    """The options of this comparison as command-line flags (what reproduces it)."""
    flags = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if key in ("overwrite_output_dir", "quiet") or value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list):
            flags.append(f"{flag} {','.join(map(str, value)) if key == 'class_weights' else ' '.join(map(str, value))}")
        elif isinstance(value, dict):
            flags.append(f"{flag} '{json.dumps(value)}' (YAML only)")
        else:
            flags.append(f"{flag} {value}")
    return " ".join(flags)


def write_chart(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("val_accuracy", "validation accuracy (%)"), ("val_f1", "validation F1 (%)"),
              ("trainable_params", "trainable parameters (log)"), ("train_time_s", "train time (s)"),
              ("peak_rss_mb", "peak RSS (MB)"), ("size_on_disk_mb", "size on disk (MB)")]
    figure, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    colors = plt.get_cmap("tab10").colors
    for ax, (column, title) in zip(axes.flat, panels, strict=True):
        ax.bar(table["strategy"], table[column], color=colors[: len(table)])
        ax.set_title(title)
        if column == "trainable_params":
            ax.set_yscale("log")
        elif column.startswith("val_"):
            ax.set_ylim(0, 105)
        for x, value in enumerate(table[column]):
            ax.annotate(f"{value:,.0f}" if value >= 100 else f"{value:g}", (x, value), ha="center",
                        va="bottom", fontsize=8)
        if column == "size_on_disk_mb" and "adapter_mb" in table:
            for x, adapter in enumerate(table["adapter_mb"]):
                if pd.notna(adapter):  # the merged model is full size; the adapter alone is tiny
                    ax.annotate(f"adapter\nalone\n{adapter:g} MB", (x, 0), ha="center", va="bottom", fontsize=8,
                                color="white", xytext=(0, 4), textcoords="offset points")
    figure.suptitle("finetext compare: fine-tuning strategies")
    figure.tight_layout()
    try:
        with staged_file(path) as tmp:
            figure.savefig(tmp, dpi=110)
    finally:
        plt.close(figure)
