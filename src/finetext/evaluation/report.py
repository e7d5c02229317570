"""`finetext report DIR`: one self-contained HTML page (report.html) describing a finished training run.

Read from the run's files only (metrics.json; finetext.yaml and mistakes.json when present), so it can be
written again at any time. The charts are PNGs in report/ and embedded in the page as data URIs: the page
needs no JavaScript, no network and no other file. Every value that comes from the data or the config is
HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from finetext import model_files
from finetext.artifacts import (
    CHECKPOINTS,
    MANIFEST,
    METRICS,
    MISTAKES,
    REPORT,
    REPORT_FILES,
    read_config,
    read_settings,
)
from finetext.config import TrainConfig, TrainingConfig
from finetext.errors import FinetextError
from finetext.evaluation import report_charts as charts
from finetext.evaluation.metrics import per_class_scores, per_label_scores
from finetext.evaluation.mistakes import MAX_TEXT_CHARS
from finetext.evaluation.run_metrics import RunMetrics, SplitScores, read_run_metrics
from finetext.storage import write_bytes, write_text
from finetext.version import __version__

HEADLINE = (("accuracy", "accuracy"), ("f1", "F1"), ("precision", "precision"), ("recall", "recall"),
            ("mcc", "MCC"))
MULTILABEL_EXTRA = (("f1_macro", "macro F1"), ("hamming_loss", "Hamming loss"))
SECTIONS = (("overview", "Overview"), ("metrics", "Headline metrics"), ("curves", "Training curves"),
            ("confusion", "Confusion matrix"), ("per-class", "Per-class precision, recall and F1"),
            ("mistakes", "Most confident mistakes"), ("configuration", "Configuration"))


@dataclass
class RunFiles:
    """What the report is made from."""

    metrics: RunMetrics
    settings: dict | None
    """finetext.yaml as written, for the configuration table; None for a directory without one."""
    config: TrainConfig | None
    """The same file read back into the config (every default from config.py); None without one."""
    mistakes: dict | None
    """mistakes.json by split; None when the run predates it."""
    name: str

    @property
    def training(self) -> TrainingConfig:
        """The run's training settings, or the defaults for a directory without finetext.yaml."""
        return (self.config or TrainConfig()).training


def write_report(folder: str | Path) -> Path:
    """Write folder/report.html and its charts (folder/report/*.png) from the run's files; return the page."""
    folder = Path(folder)
    run = load_run(folder)
    images = draw_charts(run)
    write_images(folder / REPORT_FILES, images)
    write_text(folder / REPORT, render_page(run, images))
    return folder / REPORT


def check_finished_run(path: str | Path) -> Path:
    """The directory of a finished training run, or a FinetextError saying what it is instead."""
    folder = Path(path).expanduser()
    fix = "Pass the --output-dir of a finished training run."
    if not folder.is_dir():
        raise FinetextError(f"directory not found: {folder}.", fix)
    if not (folder / METRICS).is_file():
        unfinished = (folder / CHECKPOINTS).is_dir()
        raise FinetextError(f"{folder} is not a finished training run (no {METRICS}).",
                            "Training did not finish there; rerun or resume it." if unfinished else fix)
    if not (folder / MANIFEST).is_file():
        raise FinetextError(f"{folder} holds an incomplete run ({MANIFEST} missing: a save was interrupted).",
                            "Rerun training with --overwrite-output-dir.")
    return folder


def load_run(folder: Path) -> RunFiles:
    metrics = read_run_metrics(folder / METRICS, "Pass the --output-dir of a finished training run.")
    settings = read_settings(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    config = read_config(folder / MANIFEST)
    mistakes = read_json(folder / MISTAKES) if (folder / MISTAKES).is_file() else None
    # the staging folder of a run being saved has a temporary name: the configured one is the real one
    name = Path(config.output_dir if config else folder.resolve().name).name
    return RunFiles(metrics, settings, config, mistakes, name)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FinetextError(f"{path} not found.", "Pass the --output-dir of a finished training run.")
    return model_files.read_json(path, "Rerun training to write it again.")


# ----------------------------------------------------------------------------------------------------------
# Charts: drawn once, saved as files and embedded in the page.


def draw_charts(run: RunFiles) -> dict[str, bytes]:
    """PNG bytes by file name; a chart with nothing to show is left out."""
    history, loss_log, kept = run.metrics.history, run.metrics.loss_log, run.metrics.kept_step
    drawn = {
        "loss.png": charts.loss_chart(history, loss_log, kept),
        "validation_metrics.png": charts.metrics_chart(history, loss_log, kept),
        "learning_rate.png": charts.learning_rate_chart(history, loss_log),
    }
    for split, report in run.metrics.reports().items():
        confusion = report.confusion_matrix
        if confusion:
            title = f"{split} ({report.num_examples:,} examples)"
            chart = charts.multilabel_confusion_chart if run.metrics.multi_label else charts.confusion_chart
            drawn[f"confusion_{split}.png"] = chart(confusion, title)
    return {name: data for name, data in drawn.items() if data is not None}


def write_images(folder: Path, images: dict[str, bytes]) -> None:
    """Each PNG atomically; PNGs of an earlier report that this one lacks are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        write_bytes(folder / name, data)
    for stale in folder.glob("*.png"):
        if stale.name not in images:
            stale.unlink()


def image(images: dict[str, bytes], name: str, alt: str) -> str:
    """An <img> with the PNG inline (its pixel size from the PNG header), or nothing when it was not drawn."""
    data = images.get(name)
    if data is None:
        return ""
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    source = base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{source}" width="{width}" height="{height}" '
            f'alt="{escape(alt)}"><figcaption>{REPORT_FILES}/{escape(name)}</figcaption></figure>')


# ----------------------------------------------------------------------------------------------------------
# Formatting


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def table(head: list[str], rows: list[list[str]], numeric_from: int = 1, row_classes: list[str] | None = None,
          css: str = "") -> str:
    """An HTML table of already-escaped cells; columns from numeric_from on are right-aligned numbers."""
    def cells(values: list[str], tag: str) -> str:
        return "".join(f'<{tag}{" class=num" if i >= numeric_from else ""}>{v}</{tag}>'
                       for i, v in enumerate(values))

    def row(values: list[str], css_class: str) -> str:
        return f'<tr class="{css_class}">{cells(values, "td")}</tr>' if css_class else f"<tr>{cells(values, 'td')}</tr>"

    classes = row_classes or [""] * len(rows)
    body = "".join(row(values, css_class) for values, css_class in zip(rows, classes, strict=True))
    return f'<table class="{css}"><thead><tr>{cells(head, "th")}</tr></thead><tbody>{body}</tbody></table>'


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def section(anchor: str, body: str) -> str:
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{title}</h2>{body}</section>'


# ----------------------------------------------------------------------------------------------------------
# The page


def render_page(run: RunFiles, images: dict[str, bytes]) -> str:
    body = "".join([overview(run), headline(run), curves(run, images), scores(run, images), mistakes(run),
                    configuration(run)])
    sources = ", ".join(name for name, present in ((METRICS, True), (MANIFEST, run.settings is not None),
                                                   (MISTAKES, run.mistakes is not None)) if present)
    return html_page("finetext report", run.name, SECTIONS, body,
                     f"Written by finetext {escape(__version__)} from {sources}. Regenerate with\n"
                     "<code>finetext report DIR</code>.")


def html_page(kind: str, name: str, sections: tuple[tuple[str, str], ...], body: str, footer: str,
              style: str | None = None) -> str:
    """One self-contained page in finetext's style (report.html, tune.html, audit.html): the kind and name as its
    title, a navigation bar over sections (anchor, title), the body and the footer (both already HTML); the
    stylesheet is report.html's unless given."""
    nav = " ".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(kind)}: {escape(name)}</title>
<style>{style or STYLE}</style>
</head>
<body>
<main>
<header><p class="kicker">{escape(kind)}</p><h1>{escape(name)}</h1><nav>{nav}</nav></header>
{body}
<footer>{footer}</footer>
</main>
</body>
</html>
"""


def model_name(run: RunFiles) -> str:
    model = run.config.model.model if run.config else "unknown (no finetext.yaml)"
    init_from = run.config.model.init_from if run.config else None
    return f"{model}, initialised from {init_from}" if init_from else str(model)


def overview(run: RunFiles) -> str:
    m = run.metrics
    train, params, best = m.train, m.parameters, m.best
    splits = " · ".join(f"{split} {count:,}" for split, count in m.data.sizes.items())
    kind = "multi-label" if run.metrics.multi_label else "single-label"
    trainable = (f"{params['trainable']:,} of {params['total']:,} "
                 f"({100 * params['trainable'] / max(1, params['total']):.2f}%)")
    facts = [
        ("model", model_name(run)),
        ("data", m.data.source),
        ("labels", f"{len(m.label_names)}, {kind}: {', '.join(m.label_names)}"),
        ("examples", splits or "–"),
        *([("windows (long texts chunked)", " · ".join(f"{k} {n:,}" for k, n in m.data.windows.items()))]
          if m.data.windows else []),
        ("strategy", params["strategy"]),
        ("engine", train.engine),
        ("precision", run.training.precision if run.config else "–"),
        ("parameters trained", trainable),
        ("training time", f"{duration(train.train_runtime_s)} (whole run {duration(train.wall_time_s)})"),
        ("epochs · steps", f"{train.epochs_completed} · {train.global_steps}"),
        ("kept model", f"epoch {best.epoch}, step {best.step}" if best else "–"),
        ("finetext", m.finetext_version),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    return section("overview", f'<dl class="facts">{items}</dl>')


def headline(run: RunFiles) -> str:
    reports = run.metrics.reports()
    columns = HEADLINE + (MULTILABEL_EXTRA if run.metrics.multi_label else ())
    cards = "".join(f'<div class="card"><span>{split} {title}</span><strong>{percent(value)}</strong></div>'
                    for split, report in reports.items()
                    for title, value in (("accuracy", report.accuracy), ("F1", report.f1)))
    rows = [[escape(split), f"{report.num_examples:,}", *(percent(getattr(report, k)) for k, _ in columns)]
            for split, report in reports.items()]
    average = reports["validation"].f1_average or ""
    positive = run.metrics.label_names[1] if average == "binary" else None
    kind = {"binary": f"binary (of the positive class <em>{escape(str(positive))}</em>)",
            "macro": "macro-averaged over the classes", "micro": "micro-averaged over every (example, label)"}
    metric = run.training.metric_for_best_model
    text = (f"Percent. F1, precision and recall are {kind.get(average, escape(average))}. Validation scores the "
            f"kept model (the best by <code>{escape(str(metric))}</code>, or the last); test is scored once, at "
            "the end." + ("" if "test" in reports else " This run has no labelled test split."))
    if run.metrics.multi_label:
        text += " Accuracy is subset accuracy: every label of an example right."
    head = ["split", "examples", *(title for _, title in columns)]
    return section("metrics", f'<div class="cards">{cards}</div>{table(head, rows)}{note(text)}')


def curves(run: RunFiles, images: dict[str, bytes]) -> str:
    figures = "".join(image(images, name, alt) for name, alt in (
        ("loss.png", "training and validation loss per step"),
        ("validation_metrics.png", "validation metrics per evaluation"),
        ("learning_rate.png", "learning rate per step")))
    if not figures:
        return section("curves", note("This run recorded no losses or evaluations."))
    logged = ("Training loss is logged every <code>logging_steps</code> optimizer steps"
              if run.metrics.loss_log else
              "Training loss is the mean since the previous evaluation (this run has no per-step loss log)")
    text = (f"{logged}; validation is scored after every evaluation. The top axis shows epochs; the dashed "
            "line marks the evaluation whose model was kept.")
    return section("curves", f'{note(text)}<div class="grid">{figures}{evaluations(run)}</div>')


def evaluations(run: RunFiles) -> str:
    history = run.metrics.history
    if not history:
        return ""
    kept = run.metrics.kept_step
    metric = run.training.metric_for_best_model
    wanted = ["accuracy", "f1", "mcc"] + ([metric] if metric in dict(HEADLINE) else [])  # the rest: in the chart
    names = [k for k, _ in HEADLINE if k in wanted]
    rows = [[f"{e.epoch}", f"{e.step}", number(e.train_loss), number(e.validation.loss),
             *(percent(e.validation.score(k)) for k in names)]
            for e in history]
    head = ["epoch", "step", "train loss", "val loss", *(dict(HEADLINE)[k] for k in names)]
    classes = ["kept" if e.step == kept else "" for e in history]
    evaluated = table(head, rows, numeric_from=0, row_classes=classes, css="compact")
    return f'<div class="scroll"><h3 class="first">Evaluations</h3>{evaluated}' + note(
        "Validation metrics in percent; train loss is the mean since the previous evaluation. The highlighted "
        "row is the kept model.") + "</div>"


def scores(run: RunFiles, images: dict[str, bytes]) -> str:
    """The confusion matrices beside the per-class tables, unless the matrices need the page's whole width
    (many classes, or one small matrix per label)."""
    side_by_side = not run.metrics.multi_label and len(run.metrics.label_names) <= 8
    return f'<div class="{"pair" if side_by_side else ""}">{confusion(run, images)}{per_class(run)}</div>'


def confusion(run: RunFiles, images: dict[str, bytes]) -> str:
    figures = "".join(image(images, f"confusion_{split}.png", f"{split} confusion matrix")
                      for split in run.metrics.reports())
    if run.metrics.multi_label:
        text = ("One matrix per label, over every example: rows are the true decision (no/yes), columns the "
                "predicted one, so the cells are [[true negatives, false positives], [false negatives, true "
                "positives]].")
        if not figures:
            text += f" Too many labels to draw (more than {charts.MAX_LABEL_GRID}): see the per-label table."
    else:
        text = ("Rows: true label; columns: predicted label. Cells show the count and its share of the true "
                "label's examples; the colour follows that share.")
    return section("confusion", f'<div class="stack">{figures}</div>{note(text)}')


def per_class(run: RunFiles) -> str:
    parts = []
    for split, report in run.metrics.reports().items():
        confusion_matrix = report.confusion_matrix
        if not confusion_matrix:
            continue
        score = per_label_scores if run.metrics.multi_label else per_class_scores
        scores = score(confusion_matrix.matrix, confusion_matrix.labels)
        parts.append(f"<div><h3>{escape(split)}</h3>{class_table(scores)}</div>")
    text = ("Computed from the confusion matrix: precision = of the examples predicted as the class, the share "
            "that has it; recall = of the examples that have it, the share found; support = examples that have it. "
            "Macro: the mean over classes; weighted: by support.")
    return section("per-class", f'<div class="stack">{"".join(parts)}</div>{note(text)}')


def class_table(scores: list[dict]) -> str:
    total = sum(s["support"] for s in scores)
    averages = [("macro average", [sum(s[k] for s in scores) / max(1, len(scores)) for k in ("precision", "recall",
                                                                                           "f1")]),
                ("weighted average", [sum(s[k] * s["support"] for s in scores) / max(1, total)
                                      for k in ("precision", "recall", "f1")])]
    rows = [[escape(s["label"]), percent(s["precision"]), percent(s["recall"]), f1_cell(s["f1"]),
             f"{s['support']:,}"] for s in scores]
    rows += [[name, percent(p), percent(r), f1_cell(f), f"{total:,}"] for name, (p, r, f) in averages]
    classes = [""] * len(scores) + ["average"] * len(averages)
    return table(["label", "precision", "recall", "F1", "support"], rows, row_classes=classes)


def f1_cell(value: float) -> str:
    """The F1 with a bar under it, for reading many classes at a glance."""
    return f'{percent(value)}<div class="bar"><span style="width:{100 * value:.1f}%"></span></div>'


def mistakes(run: RunFiles) -> str:
    if run.mistakes is None:
        return section("mistakes", note(f"This run has no {MISTAKES} (written by <code>finetext train</code> "
                                        "since the report was added), so its mistakes cannot be shown."))
    parts = []
    for split, records in run.mistakes.items():
        title = f"{escape(split)}: {mistakes_title(len(records), run.metrics.reports().get(split))}"
        body = mistake_table(records) if records else note("No mistakes on this split.")
        parts.append(f"<h3>{title}</h3>{body}")
    text = (f"The wrong predictions of the final model with the highest probability, most confident first "
            f"(texts cut at {MAX_TEXT_CHARS:,} characters).")
    if run.metrics.multi_label:
        text += (" An example is wrong when its predicted label set differs from the true one; confidence is "
                 "that of its most confident wrong decision.")
    return section("mistakes", note(text) + "".join(parts))


def mistakes_title(shown: int, report: SplitScores | None) -> str:
    """'the 20 most confident of 160 mistakes (872 examples)', from the split's accuracy (subset accuracy for
    multi-label, so an example with any wrong label counts once)."""
    if report is None:
        return f"{shown} most confident mistakes"
    examples = report.num_examples
    wrong = round((1 - report.accuracy) * examples)
    if shown == wrong:
        return f"all {wrong:,} mistakes ({examples:,} examples)" if wrong else f"no mistakes ({examples:,} examples)"
    return f"the {shown} most confident of {wrong:,} mistakes ({examples:,} examples)"


def mistake_table(records: list[dict]) -> str:
    rows = []
    for rank, record in enumerate(records, 1):
        text = f'<div class="text">{escape(record["text"])}</div>'
        if "text_pair" in record:
            text += f'<div class="text pair">{escape(record["text_pair"])}</div>'
        row = [f"{rank}", text, label_cell(record["label"]), label_cell(record["predicted"], "wrong"),
               f"{record['score']:.3f}"]
        if len(record.get("scores", {})) > 2:  # with two classes the confidence says it all
            top = sorted(record["scores"].items(), key=lambda item: -item[1])[:4]
            row.append("<br>".join(f"{escape(name)} {p:.3f}" for name, p in top))
        rows.append(row)
    head = ["#", "text", "true", "predicted", "confidence", "top probabilities"][:len(rows[0])]
    return table(head, rows, numeric_from=4, css="mistakes")


def label_cell(value: str | list[str], css: str = "") -> str:
    text = (", ".join(value) or "(none)") if isinstance(value, list) else value
    return f'<span class="label {css}">{escape(str(text))}</span>'


def configuration(run: RunFiles) -> str:
    if run.settings is None:
        return section("configuration", note(f"No {MANIFEST} in this directory: the configuration is unknown."))
    tables = []
    top = {k: v for k, v in run.settings.items() if not isinstance(v, dict)}
    for name, values in [*((k, v) for k, v in run.settings.items() if isinstance(v, dict)), ("run", top)]:
        rows = [[f"<code>{escape(str(key))}</code>", escape(config_value(value))] for key, value in values.items()]
        tables.append(f"<div><h3>{escape(name)}</h3>{table(['key', 'value'], rows, numeric_from=2)}</div>")
    text = f"The resolved configuration ({MANIFEST}): defaults filled in, columns and label names as used."
    return section("configuration", f'{note(text)}<div class="config">{"".join(tables)}</div>')


def config_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --soft: #f6f8fa; --accent: #1f77b4; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 40px; }
header { border-bottom: 2px solid var(--ink); padding-bottom: 12px; }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .08em; font-size: 12px; }
h1 { margin: 2px 0 8px; font-size: 28px; overflow-wrap: anywhere; }
nav { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
section { margin-top: 34px; }
h2 { font-size: 20px; margin: 0 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 8px; }
.note { color: var(--muted); font-size: 13px; margin: 8px 0; max-width: 80ch; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: 1px 4px; border-radius: 4px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 10px 24px; margin: 0; }
.facts div { border-left: 3px solid var(--line); padding-left: 10px; }
.facts dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 14px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 8px 16px;
  min-width: 150px; }
.card span { display: block; color: var(--muted); font-size: 13px; }
.card strong { font-size: 26px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-size: 14px; margin: 4px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.compact { font-size: 13px; }
table.compact th, table.compact td { padding: 4px 7px; }
h3.first { margin-top: 0; }
.scroll { overflow-x: auto; }
tr.kept td { background: #e8f1fa; font-weight: 600; }
tr.average td { color: var(--muted); }
.bar { height: 4px; background: var(--line); border-radius: 2px; margin-top: 3px; min-width: 60px; }
.bar span { display: block; height: 100%; background: var(--accent); border-radius: 2px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px 24px;
  align-items: start; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 0 32px; }
.stack { display: flex; flex-wrap: wrap; gap: 16px 24px; align-items: flex-start; }
.pair .stack { flex-direction: column; flex-wrap: nowrap; }
.stack h3 { margin-top: 0; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
table.mistakes { width: 100%; }
table.mistakes td:nth-child(2) { width: 60%; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 9em; overflow-y: auto; }
.text.pair { margin-top: 4px; padding-top: 4px; border-top: 1px dashed var(--line); }
.label { white-space: nowrap; }
.label.wrong { color: var(--bad); font-weight: 600; }
.config { columns: 3 320px; column-gap: 24px; }
.config > div { break-inside: avoid; }
.config table { width: 100%; }
.config td:last-child { overflow-wrap: anywhere; }
footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 13px; }
"""
