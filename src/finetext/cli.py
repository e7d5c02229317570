"""Command line: flags are generated from the config dataclasses; every command calls finetext.api.

Errors caused by the user (FinetextError, bad flags) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from finetext.auditing.settings import AuditConfig
from finetext.config import (
    SECTIONS,
    DataConfig,
    TrainConfig,
    config_from_flat,
    docs_markdown,
    field_choices,
    field_doc,
    field_docs,
    flatten,
    leaf_fields,
    load_yaml,
)
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import RunMetrics
from finetext.inference.export_formats import DEFAULT_FORMAT, EXPORT_FORMATS
from finetext.inference.stream_settings import DEFAULT_CHUNK_ROWS
from finetext.models.strategies import STRATEGIES
from finetext.serving.settings import BACKEND_CHOICES, ServeConfig
from finetext.tuning.settings import TuneConfig

log = logging.getLogger("finetext")
TRUST_HELP = "run the model directory's own Python code (auto_map in config.json); only for models you trust"


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; finetext prints one line naming the problem and the fix."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message}. See `{self.prog} --help`.", file=sys.stderr)
        raise SystemExit(2)


def add_config_flags(parser: argparse.ArgumentParser, only: set[str] | None = None) -> None:
    """One --flag-with-dashes per config field, its help from the field's docstring.

    Flags keep their values as strings; the config's own coercion (one place) checks and converts them.
    """
    for name, (section, f) in leaf_fields().items():
        if only is not None and name not in only:
            continue
        hint = get_type_hints(SECTIONS[section] if section else TrainConfig)[name]
        flag = "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": field_doc(section, name)}
        if hint is bool or set(get_args(hint)) == {bool, type(None)}:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        registry = field_choices(f)
        choices = tuple(registry) if registry is not None else next(
            (get_args(a) for a in (hint, *get_args(hint)) if "Literal" in str(get_origin(a))), None)
        if choices:
            kwargs["choices"] = choices
        else:
            kwargs["metavar"] = _metavar(name, hint)
        if "list" in str(hint):
            kwargs["nargs"] = "+"
        parser.add_argument(flag, **kwargs)


def _metavar(name: str, hint: Any) -> str:
    if name == "dataset":
        return "NAME_OR_PATH"
    if name == "report_to":
        return "TRACKER"
    if name == "hub_repo_id":
        return "USER/NAME"
    if name == "exclude_rows":
        return "LABEL_ISSUES_CSV"
    if name == "model" or name.endswith(("_file", "_dir")):
        return "PATH"
    return "N" if "int" in str(hint) else "X" if "float" in str(hint) else "VALUE"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="finetext", description="Fine-tune pretrained models for text classification.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    for add_command in (add_train_command, add_tune_command, add_compare_command, add_config_command,
                        add_evaluate_command, add_predict_command, add_export_command, add_report_command,
                        add_serve_command, add_doctor_command, add_push_command, add_audit_command):
        add_command(commands)
    return parser


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """finetext train [CONFIG] [flags]."""
    train = commands.add_parser("train", help="fine-tune a model", description="Fine-tune a model. "
                                "Flags override the values of CONFIG (YAML, flat or in data/model/training sections).")
    train.add_argument("config", nargs="?", help="YAML config file")
    add_config_flags(train)


def add_tune_command(commands: argparse._SubParsersAction) -> None:
    """finetext tune [CONFIG] [train flags] [study flags]."""
    tune = commands.add_parser(
        "tune", help="search the training settings (Optuna) and train the best",
        description="Run an Optuna study: each trial trains with sampled settings (the training flags and CONFIG "
        "are the base every trial starts from) and is scored on a split no final figure comes from; hopeless "
        "trials are pruned. Then the best setting trains on the full data. OUTPUT_DIR gets model/ (the final "
        "model), best.yaml (`finetext train best.yaml` reproduces it), trials.csv, tune.html, final.json and "
        "study.db (the study, which --resume continues).")
    tune.add_argument("config", nargs="?", help="YAML config file (the base of every trial)")
    add_config_flags(tune, set(leaf_fields()) - {"resume"})
    add_dataclass_flags(tune, TuneConfig)


def add_audit_command(commands: argparse._SubParsersAction) -> None:
    """finetext audit [CONFIG] [train flags] [audit flags]."""
    audit = commands.add_parser(
        "audit", help="find the training rows whose labels are probably wrong (cleanlab)",
        description="Score every training row with a model that never saw it (K-fold cross-validation on the data "
        "and model the training flags name), then rank the likely label errors with cleanlab's confident learning. "
        "OUTPUT_DIR gets label_issues.csv (row id, text, given and suggested label, score; most likely first), "
        "out_of_fold.parquet (every row), audit.json (error rate per class, most confused labels) and audit.html. "
        "`finetext train ... --exclude-rows OUTPUT_DIR/label_issues.csv [--exclude-top N]` retrains without them.")
    audit.add_argument("config", nargs="?", help="YAML config file (data, model and the fold runs' training)")
    add_config_flags(audit, set(leaf_fields()) - {"resume", "report", "report_to", "tracking_dir", "run_name",
                                                  "experiment", "push_to_hub", "hub_repo_id", "hub_private",
                                                  "hub_revision", "overwrite_output_dir"})
    add_dataclass_flags(audit, AuditConfig)


def add_compare_command(commands: argparse._SubParsersAction) -> None:
    """finetext compare: one run per strategy."""
    compare = commands.add_parser(
        "compare", help="train one model per strategy and compare them",
        description="Train the same data, model and seed with each strategy (one after the other) and write "
        "OUTPUT_DIR/<strategy>/ plus comparison.md, comparison.csv and comparison.png.")
    compare.add_argument("config", nargs="?", help="YAML config file")
    compare.add_argument("--strategies", help="comma-separated strategies to compare (default: every one, "
                         f"{','.join(STRATEGIES)})")
    add_config_flags(compare, set(leaf_fields()) - {"strategy", "resume"})


def add_config_command(commands: argparse._SubParsersAction) -> None:
    """finetext config: the resolved config, or the reference with --docs."""
    show = commands.add_parser("config", help="print the resolved config, or the reference with --docs")
    show.add_argument("config", nargs="?", help="YAML config file")
    show.add_argument("--docs", action="store_true", help="print the configuration reference (Markdown)")
    add_config_flags(show)


def add_evaluate_command(commands: argparse._SubParsersAction) -> None:
    """finetext evaluate MODEL_DIR."""
    evaluate = commands.add_parser("evaluate", help="score a trained model on labelled data")
    evaluate.add_argument("model_dir", help="output directory of a training run or of finetext export")
    add_config_flags(evaluate, {"dataset", "data_dir", "test_file", "validation_file", "text_column",
                                "text_pair_column", "label_column", "eval_samples", "bad_rows", "max_length",
                                "label_separator", "multi_label", "threshold", "long_text", "stride",
                                "window_aggregation", "quiet"})
    evaluate.add_argument("--split", choices=("test", "validation", "train"), help="split to score "
                          "(default: test when labelled, else validation)")
    evaluate.add_argument("--batch-size", type=int, default=64, help="examples per batch")
    evaluate.add_argument("--output", help="also write the metrics to this JSON file")
    evaluate.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def add_predict_command(commands: argparse._SubParsersAction) -> None:
    """finetext predict MODEL_DIR TEXTS, or --input FILE."""
    predict = commands.add_parser("predict", help="predict labels for texts or a file")
    predict.add_argument("model_dir", help="output directory of a training run or of finetext export")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--text-pair", nargs="+", help="second texts, one per text (sentence-pair models)")
    predict.add_argument("--input", help="file to classify (CSV, TSV, JSON, JSONL, Parquet), read, predicted "
                         "and written a chunk at a time (a JSON array is read whole)")
    predict.add_argument("--output", help="where to write the predictions (type from the extension; default: "
                         "<input stem>.predictions.parquet beside the input); OUTPUT.parts/ holds the finished "
                         "chunks until the end")
    predict.add_argument("--text-column", help="text column of --input (default: the one trained on)")
    predict.add_argument("--text-pair-column", help="second text column of --input")
    predict.add_argument("--batch-size", type=int, default=32, help="examples per batch")
    predict.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                         help="auto: bfloat16 autocast or fp32, whichever measured faster for this model and batch "
                              "shape on this machine (cached; inputs under 16 batches are not measured and run fp32 "
                              "unless measured before); fp32 reproduces the evaluation's scores exactly")
    predict.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                         help="auto: with --precision auto, a long prediction (2 minutes or more) runs in "
                              "onnxruntime where that measured faster for this model here (its ONNX copy is "
                              "exported to the cache once); pytorch; onnxruntime (the cached ONNX copy)")
    predict.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                         help="--input rows read, predicted and written at a time (default %(default)s; memory "
                              "grows with it, not with the file)")
    predict.add_argument("--resume", action="store_true", help="continue an interrupted --input prediction after "
                         "its last finished chunk (same input, model and flags)")
    predict.add_argument("--overwrite", action="store_true", help="start an interrupted --input prediction again")
    predict.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def add_export_command(commands: argparse._SubParsersAction) -> None:
    """finetext export MODEL_DIR --output-dir DIR."""
    formats = "; ".join(f"{f.name}: {f.description}" for f in EXPORT_FORMATS.values())
    export = commands.add_parser(
        "export", help="export a trained model for another runtime (ONNX)",
        description="Write MODEL_DIR in another format to OUTPUT_DIR, with its tokenizer, label names and "
        "export.json (versions and the largest probability difference from PyTorch). finetext predict, evaluate "
        "and serve load the exported directory like a training run's.")
    export.add_argument("model_dir", help="output directory of a training run")
    export.add_argument("--format", default=DEFAULT_FORMAT, help=f"export format ({formats}); default: "
                        f"{DEFAULT_FORMAT}")
    export.add_argument("--quantize", help="int8 (onnx): dynamic quantization, int8 weights (smaller, and faster on "
                        "some CPUs; probabilities shift by up to 0.15); default: fp32 weights")
    export.add_argument("--output-dir", required=True, help="directory to write the exported model to")
    export.add_argument("--overwrite", action="store_true", help="replace --output-dir when it is not empty")


def add_report_command(commands: argparse._SubParsersAction) -> None:
    """finetext report MODEL_DIR."""
    report = commands.add_parser(
        "report", help="write report.html for a training run",
        description="Write MODEL_DIR/report.html, one self-contained page (charts embedded, also saved in "
        "MODEL_DIR/report/): loss and metric curves, confusion matrix, per-class precision/recall/F1, the most "
        "confident mistakes and the configuration. finetext train writes it too (unless --no-report).")
    report.add_argument("model_dir", help="output directory of a finished training run")


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    """finetext serve MODEL_DIR."""
    serve = commands.add_parser(
        "serve", help="serve a trained model over HTTP (FastAPI)",
        description="Serve MODEL_DIR: POST /predict ({\"texts\": [...]} or {\"text\": \"...\"}), GET /info, "
        "GET /metrics (Prometheus), GET /openapi.json, and the open probes GET /health (the process is up) and GET "
        "/ready (the model is loaded and warmed up). With --api-key-file or FINETEXT_API_KEYS every path but the "
        "probes needs `Authorization: Bearer KEY`; a non-loopback --host without keys is refused unless "
        "--allow-unauthenticated. Concurrent requests are batched together; inputs are bounded; SIGTERM drains.")
    serve.add_argument("model_dir", help="output directory of a training run or of finetext export")
    add_dataclass_flags(serve, ServeConfig)


def add_doctor_command(commands: argparse._SubParsersAction) -> None:
    """finetext doctor."""
    doctor = commands.add_parser(
        "doctor", help="print this machine, its measured speed per precision and the cached speed choices",
        description="Print the machine (CPU model and flags or GPU, threads, torch), the matmul throughput it "
        "measures now in each precision (fp32, bf16; fp16 on GPUs), the hardware choices finetext measured and "
        "cached for it (precision, threads, fused optimizer, torch.compile per model and batch size) and the "
        "versions of the libraries it runs on.")
    doctor.add_argument("--no-measure", action="store_true", help="skip the matmul measurement (a few seconds)")
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_push_command(commands: argparse._SubParsersAction) -> None:
    """finetext push MODEL_DIR --repo-id USER/NAME."""
    push = commands.add_parser(
        "push", help="upload a trained model with its model card to the Hugging Face Hub",
        description="Upload MODEL_DIR (weights, tokenizer, config.json, the model card README.md with the Hub's "
        "metadata, metrics.json, finetext.yaml, the report) to the Hub repository REPO_ID, created when missing. "
        "The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT chooses another Hub.")
    push.add_argument("model_dir", help="output directory of a finished training run")
    push.add_argument("--repo-id", required=True, metavar="USER/NAME", help="the Hub repository (USER/NAME or "
                      "ORG/NAME)")
    push.add_argument("--private", action="store_true", help="create the repository as private (when it does not "
                      "exist yet)")
    push.add_argument("--revision", metavar="BRANCH", help="the branch to push to, created from main when missing; "
                      "default: main")
    push.add_argument("--commit-message", metavar="MSG", help="the commit's message")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """--flag per field of a plain settings dataclass, its help from the field's docstring, its type and
    default from the annotation and the dataclass (checks stay in the dataclass's __post_init__)."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=docs[f.name])
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(flag, type=kind, default=f.default, metavar=kind.__name__.upper(),
                            help=f"{docs[f.name]} (default: {f.default})")


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The settings dataclass (TuneConfig, AuditConfig, ServeConfig) from its flags (add_dataclass_flags)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def flat_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's values (flat), overridden by the flags given."""
    values = flatten(load_yaml(args.config)) if args.config else {}
    return {**values, **{k: v for k, v in vars(args).items() if k in leaf_fields()}}


def resolve_train_config(args: argparse.Namespace) -> TrainConfig:
    return config_from_flat(flat_values(args))


def run_train(args: argparse.Namespace) -> int:
    from finetext.training.run import TrainingRun

    cfg = resolve_train_config(args)
    main_process = int(os.environ.get("RANK", "0")) == 0  # set by accelerate launch and torchrun
    setup_logging(cfg.quiet or not main_process)
    try:
        result = TrainingRun(cfg).run()
    except KeyboardInterrupt:
        from finetext.artifacts import CHECKPOINTS
        from finetext.training.checkpoint import RUN_CONFIG

        if (Path(cfg.output_dir) / CHECKPOINTS / RUN_CONFIG).is_file():
            print(f"interrupted: continue with `finetext train --resume --output-dir {cfg.output_dir}`.",
                  file=sys.stderr)
            return 130
        raise
    if not result.metrics:  # another process of a multi-process run: the main one reports
        return 0
    print(summary_line(RunMetrics.from_dict(result.metrics)))
    from finetext.artifacts import FINETEXT_MODEL_TYPES, open_artifact

    artifact = open_artifact(result.output_dir)
    if not artifact.adapter_only():
        own_type = artifact.model_type in FINETEXT_MODEL_TYPES
        print(f"model saved to {result.output_dir} (metrics.json, README.md; loads with "
              f"{'import finetext.architectures; ' if own_type else ''}"
              f"transformers.pipeline('text-classification', model='{result.output_dir}'))")
    else:
        print(f"LoRA adapter saved to {result.output_dir}/adapter (metrics.json, README.md; finetext predict and "
              "evaluate load it with its base model)")
    from finetext.artifacts import REPORT

    if (result.output_dir / REPORT).is_file():
        print(f"report: {result.output_dir / REPORT} (curves, confusion matrix, per-class scores, mistakes)")
    return 0


def summary_line(metrics: RunMetrics) -> str:
    parts = [f"{split}: accuracy {100 * report.accuracy:.2f}  f1 {100 * report.f1:.2f}"
             for split, report in metrics.reports().items()]
    return " | ".join(parts) + f"  ({metrics.train.wall_time_s} s training)"


def run_tune(args: argparse.Namespace) -> int:
    from finetext.tuning.study import Study

    values = {k: v for k, v in flat_values(args).items() if k != "resume"}  # --resume is the study's (TuneConfig)
    settings = dataclass_from_args(TuneConfig, args)
    setup_logging(bool(values.get("quiet")))
    try:
        result = Study(values, settings).run()
    except KeyboardInterrupt:
        out = values.get("output_dir", "outputs/run")
        print(f"interrupted: finished trials are stored; continue with `finetext tune ... --output-dir {out} "
              "--resume` (the same flags).", file=sys.stderr)
        return 130
    summary = result.summary
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts().items())
    best = summary.best
    print(f"study '{summary.study_name}': {counts}; best trial {best.number}: {summary.metric} {best.score:.4f} "
          f"on {summary.search_split.split(';')[0]}")
    print("best setting: " + ", ".join(f"{k}={v}" for k, v in best.params.items()))
    if summary.final_scores:
        scores = summary.final_scores
        print(f"final model on {summary.held_back_split} (no trial was scored on it): accuracy "
              f"{100 * scores['accuracy']:.2f}  f1 {100 * scores['f1']:.2f}  -> {summary.final_model_dir}")
    print(f"study written to {result.output_dir}/ (best.yaml, trials.csv, tune.html)")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from finetext.auditing.audit import ISSUES, Audit

    values = {k: v for k, v in flat_values(args).items() if k != "resume"}  # --resume is the audit's
    settings = dataclass_from_args(AuditConfig, args)
    setup_logging(bool(values.get("quiet")))
    try:
        result = Audit(values, settings).run()
    except KeyboardInterrupt:
        out = values.get("output_dir", "outputs/run")
        print(f"interrupted: finished folds are kept; continue with `finetext audit ... --output-dir {out} --resume` "
              "(the same flags).", file=sys.stderr)
        return 130
    s = result.summary
    worst = max(s["per_class"], key=lambda c: c["error_rate"])
    print(f"{result.flagged:,} of {result.rows:,} rows flagged as likely label errors (estimated "
          f"{result.estimated_issues:,}, {100 * result.estimated_issues / max(1, result.rows):.1f}%; highest: "
          f"{worst['label']} {100 * worst['error_rate']:.1f}%); out-of-fold accuracy "
          f"{100 * s['out_of_fold_accuracy']:.2f}, {s['folds']} folds, {result.seconds:.0f} s")
    print(f"audit written to {result.output_dir}/ ({ISSUES}, audit.html, audit.json, out_of_fold.parquet); retrain "
          f"without them: finetext train ... --exclude-rows {result.output_dir / ISSUES} [--exclude-top N]")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from finetext.api import compare
    from finetext.comparison import CSV, markdown_table

    values = flat_values(args)
    setup_logging(bool(values.get("quiet")))
    out = compare(values, strategies=args.strategies)
    print(markdown_table(pd.read_csv(out / CSV)))
    print(f"comparison written to {out}/ (comparison.md, comparison.csv, comparison.png; one run per strategy)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from finetext.inference.split_evaluation import evaluate_split

    options = {k: v for k, v in vars(args).items() if k in DataConfig.__dataclass_fields__}
    quiet = bool(getattr(args, "quiet", False))
    setup_logging(quiet)
    evaluation = evaluate_split(args.model_dir, split=args.split, batch_size=args.batch_size, progress=not quiet,
                                trust_remote_code=args.trust_remote_code, **options)
    if args.output:
        from finetext.storage import write_json

        write_json(Path(args.output), evaluation.to_dict())
    s = evaluation.scores
    print(f"{evaluation.split} ({s.num_examples} examples): accuracy {100 * s.accuracy:.2f}  f1 {100 * s.f1:.2f}  "
          f"precision {100 * s.precision:.2f}  recall {100 * s.recall:.2f}  mcc {100 * s.mcc:.2f}")
    cm = s.confusion_matrix
    title = ("per-label confusion matrices [[tn, fp], [fn, tp]]" if evaluation.multi_label
             else "confusion matrix (rows: true, columns: predicted)")
    print(f"{title}: " + json.dumps(dict(zip(cm.labels, cm.matrix, strict=True))))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from finetext import api
    from finetext.inference.stream_settings import is_main_process

    setup_logging(args.quiet)
    if args.input:
        if args.texts:
            raise FinetextError("give texts or --input, not both.")
        path = api.predict_file(args.model_dir, args.input, args.output, args.text_column,
                                args.text_pair_column, args.batch_size, progress=not args.quiet,
                                precision=args.precision, trust_remote_code=args.trust_remote_code,
                                backend=args.backend, chunk_rows=args.chunk_rows, resume=args.resume,
                                overwrite=args.overwrite)
        if is_main_process():  # under torchrun every process returns here; one says it
            print(f"predictions written to {path}")
        return 0
    if args.resume or args.overwrite:
        raise FinetextError("--resume and --overwrite apply to --input FILE.", "Drop them, or pass --input FILE.")
    if not args.texts:
        raise FinetextError("nothing to predict.", 'Pass texts ("some text") or --input FILE [--output FILE].')
    records = api.predict(args.model_dir, args.texts, args.text_pair, args.batch_size, precision=args.precision,
                          trust_remote_code=args.trust_remote_code, backend=args.backend)
    for text, record in zip(args.texts, records, strict=True):
        if args.json:
            print(json.dumps({"text": text, **record}, ensure_ascii=False))
        else:
            shown = text if len(text) <= 70 else text[:67] + "..."
            if "labels" in record:  # multi-label: every label over the threshold, with its probability
                found = ", ".join(f"{n} {record['probabilities'][n]:.3f}" for n in record["labels"]) or "(none)"
                print(f"{found}\t{shown}")
            else:
                print(f"{record['label']}\t{record['score']:.3f}\t{shown}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from finetext.api import export
    from finetext.inference.export import EXPORT_INFO

    setup_logging(False)
    out = export(args.model_dir, args.output_dir, format=args.format, quantize=args.quantize,
                 overwrite=args.overwrite)
    info = json.loads((out / EXPORT_INFO).read_text(encoding="utf-8"))
    opset = f", opset {info['opset']}" if "opset" in info else ""
    print(f"{info['format']} model ({info['quantize'] or 'fp32'}{opset}) written to {out}; "
          f"max probability difference from PyTorch on {info['probe_texts']} probe texts: "
          f"{info['max_probability_difference']:.2e}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from finetext.api import report

    page = report(args.model_dir)
    print(f"report written to {page} (charts in {page.parent / 'report'}/)")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from finetext.api import serve

    setup_logging(False)
    serve(args.model_dir, **{f.name: getattr(args, f.name) for f in dataclasses.fields(ServeConfig)})
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from finetext.hardware.doctor import doctor_report, format_report

    report = doctor_report(measure=not args.no_measure)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def run_config(args: argparse.Namespace) -> int:
    if args.docs:
        print(docs_markdown(), end="")
        return 0
    import yaml

    print(yaml.safe_dump(resolve_train_config(args).to_dict(), sort_keys=False), end="")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from finetext.push import push_artifact, repo_page

    commit = push_artifact(args.model_dir, args.repo_id, private=args.private, revision=args.revision,
                           commit_message=args.commit_message)
    print(f"pushed {args.model_dir} to {repo_page(commit, args.repo_id, args.revision)} "
          f"({args.revision or 'main'}, {commit})")
    return 0


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(format="finetext: %(message)s", level=logging.WARNING if quiet else logging.INFO,
                        stream=sys.stderr, force=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()
    from finetext.library_output import set_library_bars

    set_library_bars(False)  # for the whole command (train runs TrainingRun itself, not through finetext.api)


COMMANDS = {"train": run_train, "tune": run_tune, "compare": run_compare, "evaluate": run_evaluate,
            "predict": run_predict, "config": run_config, "export": run_export, "report": run_report,
            "serve": run_serve, "doctor": run_doctor, "push": run_push, "audit": run_audit}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from finetext.version import __version__

        print(f"finetext {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except FinetextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the output directory keeps what was saved so far.", file=sys.stderr)
        return 130
