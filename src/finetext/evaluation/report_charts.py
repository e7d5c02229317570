"""The report's charts (PNG bytes): loss, validation metrics and learning rate per step, confusion matrices.

Drawn on matplotlib Figure objects with the Agg canvas (no pyplot, no global state), in the style of
finetext compare's chart: tab10 colours, titled axes, 110 dpi.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from finetext.evaluation.run_metrics import ConfusionMatrix, HistoryEntry, LossLogEntry

DPI = 110
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
INK, MUTED = "#1f2328", "#59636e"
MARKERS_UP_TO = 40  # points per line: more than this and markers only clutter the line
METRIC_TITLES = {"accuracy": "accuracy", "f1": "F1", "precision": "precision", "recall": "recall", "mcc": "MCC"}
MAX_LABEL_GRID = 24  # multi-label: more labels than this get the per-label table only


def png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def new_axes(width: float = 6.2, height: float = 3.5) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    ax = figure.add_subplot()
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return figure, ax


def steps_per_epoch(history: list[HistoryEntry], loss_log: list[LossLogEntry]) -> float | None:
    """Optimizer steps per epoch, from the last point that knows both (for the epoch axis)."""
    for entry in reversed([*history, *loss_log]):
        if entry.epoch and entry.step:
            return entry.step / entry.epoch
    return None


def add_epoch_axis(ax: Axes, per_epoch: float | None) -> None:
    """Steps from 0 (a lone evaluation would otherwise sit in an arbitrary range), epochs on top."""
    ax.set_xlim(0, max(1.0, ax.dataLim.x1 * 1.04))  # a margin, so a point at the last step shows whole
    if per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch", color=MUTED)
        top.tick_params(colors=MUTED)


def plot_line(ax: Axes, xs: list, ys: list, label: str, color: str, **kwargs) -> None:
    """A line with markers when it has few points, so a single evaluation still shows as a dot."""
    marker = "o" if len(xs) <= MARKERS_UP_TO else None
    ax.plot(xs, ys, label=label, color=color, marker=marker, markersize=4, linewidth=1.6, **kwargs)


def legend_below(figure: Figure, ax: Axes) -> None:
    """Under the axes, where it hides no line."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8,
                  frameon=False)


def mark_kept(ax: Axes, kept_step: int | None) -> None:
    if kept_step is not None:
        ax.axvline(kept_step, color=MUTED, linestyle="--", linewidth=1, label="kept model")


def finish_step_chart(figure: Figure, ax: Axes, title: str, ylabel: str, per_epoch: float | None,
                      legend: bool = True) -> bytes:
    """Title, axis labels, the epoch axis and the legend of a chart against steps; its PNG."""
    figure.suptitle(title)
    ax.set(xlabel="step", ylabel=ylabel)
    add_epoch_axis(ax, per_epoch)
    if legend:
        legend_below(figure, ax)
    return png(figure)


def loss_chart(history: list[HistoryEntry], loss_log: list[LossLogEntry], kept_step: int | None) -> bytes | None:
    """Training loss per logged step (else per evaluation) and validation loss per evaluation."""
    if loss_log:
        train = [(e.step, e.loss) for e in loss_log]
        train_label = "training loss (mean per logging interval)"
    else:
        train = [(e.step, e.train_loss) for e in history if e.train_loss is not None]
        train_label = "training loss (mean since the previous evaluation)"
    validation = [(e.step, e.validation.loss) for e in history if e.validation.loss is not None]
    if not train and not validation:
        return None
    figure, ax = new_axes()
    if train:
        plot_line(ax, *zip(*train, strict=True), label=train_label, color=COLORS[0])
    if validation:
        plot_line(ax, *zip(*validation, strict=True), label="validation loss", color=COLORS[1])
    mark_kept(ax, kept_step)
    return finish_step_chart(figure, ax, "Loss", "loss", steps_per_epoch(history, loss_log))


def metrics_chart(history: list[HistoryEntry], loss_log: list[LossLogEntry], kept_step: int | None) -> bytes | None:
    """Validation accuracy, F1, precision, recall and MCC (percent) per evaluation."""
    if not history:
        return None
    figure, ax = new_axes()
    for name, color in zip(METRIC_TITLES, COLORS, strict=False):
        points = [(e.step, 100 * e.validation.score(name)) for e in history]
        plot_line(ax, *zip(*points, strict=True), label=METRIC_TITLES[name], color=color)
    mark_kept(ax, kept_step)
    return finish_step_chart(figure, ax, "Validation metrics per evaluation", "percent",
                             steps_per_epoch(history, loss_log))


def learning_rate_chart(history: list[HistoryEntry], loss_log: list[LossLogEntry]) -> bytes | None:
    points = [(e.step, e.learning_rate) for e in loss_log if e.learning_rate is not None]
    if not points:
        return None
    figure, ax = new_axes()
    plot_line(ax, *zip(*points, strict=True), label="learning rate", color=COLORS[4])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.1e}" if value else "0"))
    return finish_step_chart(figure, ax, "Learning rate", "learning rate", steps_per_epoch(history, loss_log),
                             legend=False)


def short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def confusion_chart(confusion: ConfusionMatrix, title: str) -> bytes:
    """Counts in cells, coloured by the share of the true class (row), so small classes read as well."""
    labels, counts = confusion.labels, np.asarray(confusion.matrix, dtype=np.int64)
    n = len(labels)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = min(max(3.6, 0.55 * n + 2.2), 11.0)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fontsize = 10 if n <= 6 else 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            color = "white" if share[i, j] > 0.55 else INK
            text = f"{counts[i, j]:,}" if n > 12 else f"{counts[i, j]:,}\n{share[i, j]:.0%}"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    names = [short(x) for x in labels]
    rotate = n > 4 or max(len(x) for x in names) > 10
    ax.set_xticks(range(n), names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(n), names)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return png(figure)


def multilabel_confusion_chart(confusion: ConfusionMatrix, title: str) -> bytes | None:
    """One 2x2 matrix [[tn, fp], [fn, tp]] per label; None when there are too many labels to draw."""
    labels, matrices = confusion.labels, np.asarray(confusion.matrix, dtype=np.int64)
    if len(labels) > MAX_LABEL_GRID:
        return None
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    figure = Figure(figsize=(2.3 * cols + 0.4, 2.2 * rows + 0.5), layout="constrained")
    for index, (name, cm) in enumerate(zip(labels, matrices, strict=True)):
        ax = figure.add_subplot(rows, cols, index + 1)
        share = cm / max(1, cm.sum())
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.55 else INK)
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_title(short(name, 24), fontsize=10)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    figure.suptitle(title)
    return png(figure)
