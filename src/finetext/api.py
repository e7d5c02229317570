"""The Python face of finetext; the CLI is a thin layer over these functions."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from finetext.config import TrainConfig, config_from_flat, flatten, load_yaml
from finetext.errors import FinetextError
from finetext.inference.backend_choice import input_workload, with_backend
from finetext.inference.classifier import Classifier
from finetext.inference.export_formats import DEFAULT_FORMAT
from finetext.inference.loader import load_classifier_dir
from finetext.inference.predict import predict_logits, predictions_from_logits
from finetext.inference.split_evaluation import check_pairs, evaluate_split
from finetext.inference.stream_settings import DEFAULT_CHUNK_ROWS, StreamRequest
from finetext.inference.streaming import predict_stream
from finetext.library_output import without_library_bars
from finetext.training.run import TrainingRun, TrainResult


@without_library_bars
def train(config: TrainConfig | dict[str, Any] | str | Path | None = None, **overrides: Any) -> TrainResult:
    """Fine-tune a model; ``config`` is a TrainConfig, a dict (flat or sectioned) or a YAML path.

    Keyword overrides use the flat field names: ``train("imdb.yaml", epochs=1, train_samples=500)``.
    """
    values = flat_config(config)
    return TrainingRun(config_from_flat({**values, **overrides})).run()


def compare(config: dict[str, Any] | str | Path | None = None, strategies: str | list[str] | None = None,
            **overrides: Any) -> Path:
    """Train one model per strategy (each in a child process) and write the comparison; returns its folder.
    ``strategies`` defaults to every registered one (finetext.models.strategies.STRATEGIES).

    ``compare("mrpc.yaml", strategies="full,lora", output_dir="outputs/cmp")`` writes outputs/cmp/full/,
    outputs/cmp/lora/ and comparison.md/.csv/.png there.
    """
    from finetext.comparison import compare as run_comparison
    from finetext.comparison import parse_strategies

    values = flatten(load_yaml(config)) if isinstance(config, (str, Path)) else flatten(config or {})
    return run_comparison({**values, **overrides}, parse_strategies(strategies))


@without_library_bars
def tune(config: TrainConfig | dict[str, Any] | str | Path | None = None, **options: Any):
    """Search the training settings with an Optuna study and train the best one; returns a
    finetext.tuning.study.TuneResult (output_dir, summary, model_dir).

    ``options`` are TuneConfig fields (trials, timeout, search_space, pruner, tune_samples, final, storage,
    study_name, resume, ...) and flat training-config overrides, told apart by name:
    ``tune("mrpc.yaml", trials=20, timeout="2h", output_dir="outputs/mrpc-tune")``.
    """
    from finetext.tuning.settings import TuneConfig
    from finetext.tuning.study import Study

    settings, overrides = split_options(TuneConfig, options)
    values = flat_config(config)
    return Study({**values, **overrides}, settings).run()


@without_library_bars
def audit(config: TrainConfig | dict[str, Any] | str | Path | None = None, **options: Any):
    """Find the training rows whose labels are probably wrong: K-fold out-of-fold probabilities ranked by cleanlab;
    returns a finetext.auditing.audit.AuditResult (output_dir, rows, flagged, estimated_issues, summary).

    ``options`` are AuditConfig fields (folds, method, rank_by, filter_by, keep_fold_models, resume, overwrite)
    and flat training-config overrides, told apart by name:
    ``audit("sst2.yaml", folds=5, method="embeddings", output_dir="outputs/sst2-audit")`` writes label_issues.csv,
    out_of_fold.parquet, audit.json and audit.html there.
    """
    from finetext.auditing.audit import Audit
    from finetext.auditing.settings import AuditConfig

    settings, overrides = split_options(AuditConfig, options)
    values = flat_config(config)
    return Audit({**values, **overrides}, settings).run()


def evaluate(model_dir: str | Path, *, split: str | None = None, batch_size: int = 64, progress: bool = True,
             trust_remote_code: bool = False, **data_options: Any) -> dict:
    """Metrics of a trained model on a labelled split of a dataset or a test file: evaluate_split's result as a
    dict (split, source and the scores, as metrics.json writes a split's)."""
    return evaluate_split(model_dir, split=split, batch_size=batch_size, progress=progress,
                          trust_remote_code=trust_remote_code, **data_options).to_dict()


def predict(model_dir: str | Path | Classifier, texts: list[str], text_pairs: list[str] | None = None,
            batch_size: int = 32, progress: bool = False, precision: str = "auto",
            trust_remote_code: bool = False, backend: str = "auto") -> list[dict]:
    """Predicted label, its probability and every label's probability, for each text (input order).

    precision: 'auto' runs bfloat16 autocast or fp32, whichever measured faster for this model here (see
    finetext.hardware), 'fp32' gives exactly the evaluation's numbers. backend: 'auto' (with precision auto, a long
    prediction runs in onnxruntime where that measured faster; finetext.inference.backend_choice), 'pytorch' or
    'onnxruntime'. trust_remote_code runs a model directory's own Python code (auto_map in its config.json); only
    for directories you trust."""
    if isinstance(texts, str):
        texts = [texts]
    _check_texts(texts, text_pairs)
    clf = model_dir
    if not isinstance(model_dir, Classifier):
        clf = load_classifier_dir(str(model_dir), trust_remote_code, precision=precision)
        check_pairs(clf, text_pairs is not None)
        clf = with_backend(clf, model_dir, backend, input_workload(clf, list(texts), text_pairs, batch_size))
    check_pairs(clf, text_pairs is not None)
    logits = predict_logits(clf, list(texts), text_pairs, batch_size, progress)
    return predictions_from_logits(logits, clf.label_names, clf.multi_label, clf.threshold)


def predict_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path | None = None,
                 text_column: str | None = None, text_pair_column: str | None = None, batch_size: int = 32,
                 progress: bool = True, precision: str = "auto", trust_remote_code: bool = False,
                 backend: str = "auto", *, chunk_rows: int = DEFAULT_CHUNK_ROWS, resume: bool = False,
                 overwrite: bool = False) -> Path:
    """Predict every row of a table; write it back with predicted_label, score and prob_<label> columns
    (multi-label: predicted_labels, joined by the label separator or '|', and prob_<label>); returns the output's
    path (default: <input stem>.predictions.parquet beside the input; the type from the extension).

    The table is read, predicted and written ``chunk_rows`` rows at a time (memory stays flat as rows grow), each
    chunk's output a part in OUTPUT.parts/ until the parts are joined: ``resume=True`` continues an interrupted
    run after its last finished part, ``overwrite=True`` starts it again. Under torchrun / accelerate launch each
    process predicts a share of the chunks and the output is the same. finetext.inference.streaming."""
    return predict_stream(StreamRequest(
        Path(model_dir), Path(input_path), Path(output_path) if output_path else None, text_column=text_column,
        text_pair_column=text_pair_column, batch_size=batch_size, chunk_rows=chunk_rows, precision=precision,
        backend=backend, trust_remote_code=trust_remote_code, progress=progress, resume=resume, overwrite=overwrite))


@without_library_bars
def export(model_dir: str | Path, output_dir: str | Path, format: str = DEFAULT_FORMAT, quantize: str | None = None,
           overwrite: bool = False, opset: int | None = None) -> Path:
    """Export a trained model to ``output_dir`` in ``format`` (finetext.inference.export_formats.EXPORT_FORMATS;
    "onnx": a graph for onnxruntime); returns output_dir.

    ``quantize="int8"`` stores int8 weights (dynamic quantization). The directory loads like a training run's
    in predict, predict_file, evaluate and serve; export.json records the largest probability difference from
    the PyTorch model measured on a few probe texts.
    """
    from finetext.inference.export import export_model

    return export_model(model_dir, output_dir, format=format, quantize=quantize, opset=opset, overwrite=overwrite)


def report(model_dir: str | Path) -> Path:
    """Write model_dir/report.html (and its charts in model_dir/report/) for a finished training run; returns
    the page's path. ``finetext train`` writes it too, unless ``report=False``."""
    from finetext.evaluation.report import check_finished_run, write_report

    return write_report(check_finished_run(model_dir))


def serve(model_dir: str | Path, **settings: Any) -> None:
    """Serve model_dir over HTTP(S) until SIGTERM or Ctrl-C; ``settings`` are ServeConfig fields (host, port,
    max_batch_size, max_texts, api_key_file, workers, ...). ``finetext.serving.app.create_app`` gives the app
    without running it."""
    from finetext.serving.server import serve as run_server
    from finetext.serving.settings import ServeConfig

    run_server(str(model_dir), ServeConfig(**settings))


def _check_texts(texts: list, pairs: list | None) -> None:
    for what, values in (("text", texts), ("text pair", pairs or [])):
        empty = [i for i, t in enumerate(values) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise FinetextError(f"{len(empty)} empty or missing {what}(s), first at position {empty[0]}.",
                                "Remove them or fill them in.")
    if pairs is not None and len(pairs) != len(texts):
        raise FinetextError(f"{len(texts)} texts but {len(pairs)} text pairs.", "Give one pair per text.")


def push(model_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
         token: str | None = None) -> str:
    """Upload a finished training run's folder, with its model card, to the Hugging Face Hub repository
    ``repo_id`` (USER/NAME; created when missing, private if asked); returns the commit's URL. ``revision`` is the
    branch (created from main when missing); the token defaults to HF_TOKEN or the one `hf auth login` stored.
    See finetext.push.push_artifact."""
    from finetext.push import push_artifact

    return push_artifact(model_dir, repo_id, private=private, revision=revision, token=token)


def flat_config(config: TrainConfig | dict[str, Any] | str | Path | None) -> dict[str, Any]:
    """A config given as a TrainConfig, a dict (flat or sectioned) or a YAML path, as flat values."""
    if isinstance(config, TrainConfig):
        return flatten(config.to_dict())
    if isinstance(config, (str, Path)):
        return flatten(load_yaml(config))
    return flatten(config or {})


def split_options(settings_class: type, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A command's own settings (tune's, audit's) built from the options named like its fields, and the rest:
    flat training-config overrides."""
    names = {f.name for f in fields(settings_class)}
    return (settings_class(**{k: v for k, v in options.items() if k in names}),
            {k: v for k, v in options.items() if k not in names})
