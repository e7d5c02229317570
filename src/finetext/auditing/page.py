"""audit.html: the audit on one self-contained page, in report.html's style (its stylesheet and table helpers)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from finetext.evaluation.report import duration, html_page, note, percent, table
from finetext.storage import write_text

PAGE = "audit.html"
SHOWN_ISSUES = 200
SECTIONS = (("overview", "Overview"), ("classes", "Estimated label errors per class"),
            ("pairs", "Most confused labels"), ("issues", "Most likely label errors"), ("next", "What to do next"))


def section(anchor: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{dict(SECTIONS)[anchor]}</h2>{body}</section>'


def write_audit_page(out: Path, summary: dict, issues: pd.DataFrame) -> Path:
    """out/audit.html from audit.json's contents and the first label issues (label_issues.csv's rows)."""
    body = "".join([overview(summary), classes(summary), pairs(summary), issue_table(summary, issues),
                    next_steps(summary, out)])
    page = html_page("finetext audit", out.name or str(out), SECTIONS, body,
                     f"Written by finetext {escape(summary['finetext_version'])} from audit.json and "
                     "label_issues.csv; ranked with\ncleanlab's confident learning on out-of-fold probabilities.")
    write_text(out / PAGE, page)
    return out / PAGE


def overview(s: dict) -> str:
    rows = s["rows"]
    method = ("mean-pooled embeddings + logistic regression per fold" if s["method"] == "embeddings"
              else f"a finetext training run per fold (strategy {s['strategy']})")
    facts = [
        ("data", s["source"]), ("rows audited", f"{rows:,}"),
        ("labels", f"{len(s['label_names'])}, {'multi-label' if s['multi_label'] else 'single-label'}: "
                   f"{', '.join(s['label_names'])}"),
        ("model", s["model"]), ("method", method),
        ("folds", f"{s['folds']} ({'stratified' if s['stratified'] else 'shuffled'}, seeded)"),
        ("out-of-fold accuracy", f"{percent(s['out_of_fold_accuracy'])}% of the given labels"),
        ("time", f"{duration(s['seconds'])} (folds {duration(s['fold_seconds'])})"),
        ("ranking", f"cleanlab {s['rank_by']}, issues by {s['filter_by']}"),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    cards = "".join(f'<div class="card"><span>{title}</span><strong>{value}</strong></div>' for title, value in (
        ("rows flagged", f"{s['flagged']:,}"), ("estimated mislabelled", f"{s['estimated_issues']:,}"),
        ("estimated error rate", f"{percent(s['estimated_issues'] / max(1, rows))}%"),
        ("label health", f"{percent(s['health_score'])}")))
    text = ("Each row was scored by a model that never saw it (cross-validation). cleanlab estimates from those "
            "probabilities how often each given label stands for each true one, and flags the rows it expects to be "
            "wrong; the estimated count may differ from the number flagged.")
    return section("overview", f'<div class="cards">{cards}</div><dl class="facts">{items}</dl>{note(text)}')


def classes(s: dict) -> str:
    rows = [[escape(c["label"]), f"{c['rows']:,}", f"{c['flagged']:,}", percent(c["error_rate"])]
            for c in sorted(s["per_class"], key=lambda c: -c["error_rate"])]
    head = ["label", "rows given it", "estimated mislabelled", "estimated error rate %"]
    return section("classes", table(head, rows) + note("Sorted by estimated error rate: the share of the rows given "
                                                       "this label whose label is probably wrong."))


def pairs(s: dict) -> str:
    found = s["confused_pairs"]
    if not found:
        return section("pairs", note("No label pair is estimated to be confused."))
    if s["multi_label"]:
        rows = [[escape(p["given"]), "given but absent" if p["likely"] == "(absent)" else "missing but present",
                 f"{p['rows']:,.0f}", percent(p["share"])] for p in found]
        head, text = ["label", "problem", "estimated rows", "probability %"], "Per label: given where it does not " \
            "apply, or missing where it does (cleanlab's common_multilabel_issues)."
    else:
        rows = [[escape(p["given"]), escape(p["likely"]), f"{p['rows']:,.1f}", percent(p["share"])] for p in found]
        head = ["given label", "probably should be", "estimated rows", "share of all rows %"]
        text = "From cleanlab's estimate of the joint distribution of given and true labels, largest first."
    return section("pairs", table(head, rows, numeric_from=2) + note(text))


def issue_table(s: dict, issues: pd.DataFrame) -> str:
    if issues.empty:
        return section("issues", note("No row was flagged."))
    rows = []
    for record in issues.head(SHOWN_ISSUES).to_dict("records"):
        text = f'<div class="text">{escape(str(record["text"]))}</div>'
        if "text_pair" in record:
            text += f'<div class="text pair">{escape(str(record["text_pair"]))}</div>'
        rows.append([f"{record['rank']}", f"{record['row_id']}", text, f'<span class="label">'
                     f'{escape(str(record["given_label"]))}</span>', f'<span class="label wrong">'
                     f'{escape(str(record["suggested_label"]))}</span>', f"{record['score']:.3f}"])
    shown = min(len(issues), SHOWN_ISSUES)
    text = (f"The first {shown:,} of {s['flagged']:,} flagged rows (all of them are in label_issues.csv), most "
            "likely mislabelled first. Row ids are 0-based positions in the training file. The score is cleanlab's "
            "label quality: near 0, the models were sure of another label.")
    head = ["#", "row id", "text", "given", "suggested", "score"]
    return section("issues", note(text) + table(head, rows, numeric_from=5, css="mistakes"))


def next_steps(s: dict, out: Path) -> str:
    issues = out / "label_issues.csv"
    text = (f"<p>Read the flagged rows and fix the labels in the data, or retrain without them:</p>"
            f"<p><code>finetext train ... --exclude-rows {escape(str(issues))}</code> (every flagged row) or add "
            "<code>--exclude-top N</code> (only the N most likely). Compare the result on a clean test split: "
            "removing rows also removes hard, correctly labelled examples.</p>")
    return section("next", text)
