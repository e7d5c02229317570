"""tune.html: one self-contained page describing a study, in the style of report.html.

Written from a TuneSummary only, so it can be written again at any time. The charts are PNGs in tune/ and
embedded in the page as data URIs (no JavaScript, no network, no other file). Every value that comes from the
study (names, parameters, errors) is HTML-escaped. The building blocks are report.html's, so both pages read
and look alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from finetext.evaluation.report import (
    REPORT_FILES,
    STYLE,
    config_value,
    duration,
    html_page,
    image,
    note,
    number,
    table,
    write_images,
)
from finetext.evaluation.report_charts import COLORS, MUTED, legend_below, new_axes, png, short
from finetext.storage import write_text
from finetext.tuning.records import TrialRecord, TuneSummary
from finetext.version import __version__

TUNE_PAGE = "tune.html"
TUNE_FILES = "tune"  # the page's PNGs (tune.html embeds them too, so it stands alone)
SECTIONS = (("overview", "Overview"), ("best", "Best settings"), ("history", "Optimisation history"),
            ("intermediate", "Intermediate values"), ("importances", "Parameter importances"),
            ("space", "Search space"), ("trials", "Trials"))
STATES = ("complete", "pruned", "failed", "running")
GREY = "#9aa0a6"
BEST_COLOR = COLORS[3]
TUNE_STYLE = """
tr.pruned td, tr.failed td { color: var(--muted); }
.error { color: var(--bad); font-size: 12px; white-space: normal; overflow-wrap: anywhere; }
ul.space { margin: 0; padding-left: 20px; }
"""


def write_tune_report(folder: Path, summary: TuneSummary) -> Path:
    """Write folder/tune.html and its charts (folder/tune/*.png) from the study's summary; return the page."""
    folder = Path(folder)
    images = draw_charts(summary)
    write_images(folder / TUNE_FILES, images)
    write_text(folder / TUNE_PAGE, render_page(summary, images))
    return folder / TUNE_PAGE


# ----------------------------------------------------------------------------------------------------------
# Charts: drawn once, saved as files and embedded in the page.


def draw_charts(summary: TuneSummary) -> dict[str, bytes]:
    """PNG bytes by file name; a chart with nothing to show is left out."""
    drawn = {
        "history.png": history_chart(summary),
        "intermediate.png": intermediate_chart(summary),
        "importances.png": importance_chart(summary.importances),
    }
    return {name: data for name, data in drawn.items() if data is not None}


def last_intermediate(trial: TrialRecord) -> float | None:
    """Where a trial stood when it ended: for a pruned trial, the score that got it stopped."""
    return trial.intermediate[max(trial.intermediate)] if trial.intermediate else None


def history_axis(summary: TuneSummary) -> tuple[str, dict[int, float]]:
    """The history chart's x axis: its label, and each trial's position on it (by trial number). Minutes
    from the study's start to when the trial ended; the trial number when any of those times is unknown,
    so the axis never mixes the two."""
    trials = sorted(summary.trials, key=lambda t: t.number)
    start = summary.started
    if start is not None and all(t.finished is not None for t in trials):
        return "minutes since the study started", {t.number: (t.finished - start).total_seconds() / 60
                                                   for t in trials}
    return "trial", {t.number: float(t.number) for t in trials}


def best_so_far(scores: Iterable[float], maximize: bool) -> list[float]:
    """The best score up to and including each one, in order."""
    pick = max if maximize else min
    best: list[float] = []
    for score in scores:
        best.append(pick(best[-1], score) if best else score)
    return best


def history_chart(summary: TuneSummary) -> bytes | None:
    """Each complete trial's score where it ended, pruned trials at their last reported score, and the
    best score so far as a step line."""
    label, x = history_axis(summary)
    complete = sorted(((x[t.number], t.score) for t in summary.trials if t.state == "complete"
                       and t.score is not None), key=lambda point: point[0])
    pruned = [(x[t.number], last_intermediate(t)) for t in summary.trials
              if t.state == "pruned" and t.intermediate]
    if not complete and not pruned:
        return None
    figure, ax = new_axes()
    if complete:
        xs, scores = zip(*complete, strict=True)
        ax.scatter(xs, scores, color=COLORS[0], s=22, label="complete trial", zorder=3)
        best = best_so_far(scores, summary.maximize)
        right = max(point[0] for point in complete + pruned)  # the line runs on to the last trial drawn
        ax.step([*xs, right], [*best, best[-1]], where="post", color=BEST_COLOR, linewidth=1.6,
                label="best so far", zorder=4)
    if pruned:
        ax.scatter(*zip(*pruned, strict=True), marker="x", color=GREY, s=28, label="pruned (last reported score)",
                   zorder=2)
    if label == "trial":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle("Optimisation history")
    ax.set(xlabel=label, ylabel=summary.metric)
    legend_below(figure, ax)
    return png(figure)


def intermediate_chart(summary: TuneSummary) -> bytes | None:
    """Each trial's score at every evaluation it reported: pruned trials grey and ending in a cross, so where
    the pruner stopped them shows; the best trial on top in its own colour."""
    best = summary.best.number if summary.best else None
    curves = sorted((t for t in summary.trials if t.intermediate and t.state != "failed"),
                    key=lambda t: t.number == best)  # the best trial last, drawn over the others
    if not curves:
        return None
    figure, ax = new_axes()
    labelled: set[str] = set()
    for trial in curves:
        steps = sorted(trial.intermediate)
        scores = [trial.intermediate[step] for step in steps]
        if trial.number == best:
            style, label = {"color": BEST_COLOR, "linewidth": 2.2, "zorder": 4}, f"best trial ({trial.number})"
        elif trial.state == "pruned":
            style, label = {"color": GREY, "linewidth": 1.0, "alpha": 0.8, "zorder": 2}, "pruned"
        else:
            style, label = {"color": COLORS[0], "linewidth": 1.2, "alpha": 0.7, "zorder": 3}, trial.state
        ax.plot(steps, scores, marker="o", markersize=3, label=label if label not in labelled else "_nolegend_",
                **style)
        labelled.add(label)
        if trial.state == "pruned":
            ax.plot(steps[-1], scores[-1], marker="x", markersize=7, color=style["color"], zorder=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle("Score at each evaluation")
    ax.set(xlabel="evaluation", ylabel=summary.metric)
    legend_below(figure, ax)
    return png(figure)


def importance_chart(importances: dict[str, float]) -> bytes | None:
    """One bar per parameter, the most important on top."""
    if not importances:
        return None
    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure, ax = new_axes(height=max(2.2, 0.4 * len(ranked) + 1.2))
    ax.barh([short(name, 28) for name, _ in ranked], [value for _, value in ranked], color=COLORS[0])
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    figure.suptitle("Parameter importance")
    ax.set_xlabel("share of the score's variance", color=MUTED)
    return png(figure)


# ----------------------------------------------------------------------------------------------------------
# The page


def section(anchor: str, body: str) -> str:
    """report.section() with this page's titles."""
    return f'<section id="{anchor}"><h2>{dict(SECTIONS)[anchor]}</h2>{body}</section>'


def figure(images: dict[str, bytes], name: str, alt: str) -> str:
    """report.image() with the caption naming this page's folder of PNGs."""
    return image(images, name, alt).replace(f"<figcaption>{REPORT_FILES}/", f"<figcaption>{TUNE_FILES}/", 1)


def render_page(summary: TuneSummary, images: dict[str, bytes]) -> str:
    body = "".join([overview(summary), best_settings(summary), history(summary, images),
                    intermediate(summary, images), importances(summary, images), search_space(summary),
                    trials(summary)])
    return html_page("finetext tune", summary.study_name, SECTIONS, body,
                     f"Written by finetext {escape(__version__)} at the end of <code>finetext tune</code>; the "
                     f"charts are also\nin {TUNE_FILES}/.", STYLE + TUNE_STYLE)


def direction(summary: TuneSummary) -> str:
    return f"{summary.metric}, {'higher' if summary.maximize else 'lower'} is better"


def trial_counts(summary: TuneSummary) -> str:
    counts = summary.counts()
    states = [*STATES, *sorted(set(counts) - set(STATES))]  # an unexpected state still counts
    parts = [f"{counts[state]} {state}" for state in states if counts.get(state)]
    return f"{len(summary.trials)}" + (f": {' · '.join(parts)}" if parts else "")


def scores_line(scores: dict[str, float] | None) -> str:
    return " · ".join(f"{name} {number(value)}" for name, value in scores.items()) if scores else "–"


def overview(summary: TuneSummary) -> str:
    held_back = summary.held_back_split or "none (no final model)"
    facts = [
        ("study", summary.study_name),
        ("storage", summary.storage),
        ("metric", direction(summary)),
        ("trials scored on", summary.search_split),
        ("held back", held_back),
        (f"final model on {summary.held_back_split or 'the held-back split'}", scores_line(summary.final_scores)),
        ("final model", summary.final_model_dir or "–"),
        ("wall time", duration(summary.wall_seconds)),
        ("trials", trial_counts(summary)),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    text = ("No trial was scored on the held-back split: its scores are the final model's only, an estimate the "
            "search could not overfit.")
    return section("overview", f'<dl class="facts">{items}</dl>{note(text) if summary.final_scores else ""}')


def best_settings(summary: TuneSummary) -> str:
    best = summary.best
    if best is None:
        return section("best", note("No trial completed, so there is no best trial."))
    cards = (f'<div class="cards"><div class="card"><span>best trial</span><strong>{best.number}</strong></div>'
             f'<div class="card"><span>{escape(summary.metric)} on the search split</span>'
             f"<strong>{number(best.score)}</strong></div></div>")
    rows = [[f"<code>{escape(str(key))}</code>", escape(config_value(value))] for key, value in best.params.items()]
    settings = table(["parameter", "value"], rows, numeric_from=2) if rows else note("This trial sampled nothing.")
    return section("best", cards + settings)


def history(summary: TuneSummary, images: dict[str, bytes]) -> str:
    chart = figure(images, "history.png", f"{summary.metric} of each trial and the best so far")
    if not chart:
        return section("history", note("No trial completed or reported a score: there is no history to draw."))
    failed = summary.counts().get("failed", 0)
    text = (f"Dots: complete trials' {escape(summary.metric)}; crosses: pruned trials at the last score they "
            "reported; the line: the best score so far." + (f" {failed} failed trial(s) have no score." if failed
                                                             else ""))
    return section("history", chart + note(text))


def intermediate(summary: TuneSummary, images: dict[str, bytes]) -> str:
    chart = figure(images, "intermediate.png", "score of each trial at each evaluation")
    if not chart:
        return section("intermediate", note("No trial reported a score during training."))
    text = ("Each line is one trial's score at each evaluation during training, as reported to the pruner. Grey "
            "lines ending in a cross are pruned trials: stopped there because they trailed the others.")
    return section("intermediate", chart + note(text))


def importances(summary: TuneSummary, images: dict[str, bytes]) -> str:
    chart = figure(images, "importances.png", "importance of each parameter")
    if not chart:
        return section("importances", note("No importances: they need at least two complete trials."))
    text = ("How much each parameter decides whether a complete trial is among the best (Optuna's default "
            "evaluator, PED-ANOVA). Small studies give rough estimates.")
    return section("importances", chart + note(text))


def search_space(summary: TuneSummary) -> str:
    if not summary.space:
        return section("space", note("The study searched no parameters."))
    lines = "".join(f"<li><code>{escape(line)}</code></li>" for line in summary.space)
    return section("space", f'<ul class="space">{lines}</ul>')


def param_cell(value: Any) -> str:
    """Floats short (the best trial's table has them in full)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(config_value(value))


def state_cell(trial: TrialRecord) -> str:
    error = f'<div class="error">{escape(trial.error)}</div>' if trial.error else ""
    return escape(trial.state) + error


def trials(summary: TuneSummary) -> str:
    if not summary.trials:
        return section("trials", note("The study has no trials yet."))
    ordered = sorted(summary.trials, key=lambda t: t.number)
    keys = list(dict.fromkeys(key for trial in ordered for key in trial.params))
    best = summary.best.number if summary.best else None
    rows = [[f"{t.number}", state_cell(t), number(t.score), duration(t.seconds),
             *(param_cell(t.params[key]) if key in t.params else "–" for key in keys)] for t in ordered]
    classes = ["kept" if t.number == best else t.state if t.state in ("pruned", "failed") else "" for t in ordered]
    head = ["trial", "state", escape(summary.metric), "time", *(f"<code>{escape(str(key))}</code>" for key in keys)]
    text = "The highlighted row is the best trial. Scores are on the search split; – where a trial has none."
    body = table(head, rows, numeric_from=2, row_classes=classes, css="compact")
    return section("trials", f'<div class="scroll">{body}</div>{note(text)}')
