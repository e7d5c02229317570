"""``finetext predict --input``: a table read, predicted and written a chunk at a time, resumable after a crash,
and shared by the processes of torchrun / accelerate launch.

1. A survey pass (table_survey) counts the rows, finds the whole file's column types and refuses empty texts.
2. Each chunk of ``chunk_rows`` rows is predicted (length-sorted within the chunk) and written as a part file in
   the output's format into ``OUTPUT.parts/`` (table_parts). A part is staged and renamed into place when
   complete, so a part present is a finished one: that is what a resumed run skips.
3. The parts are joined in input order into the output (written atomically) and the folder is removed.

``OUTPUT.parts/state.json``, written before the first part, records what the parts depend on: the input's
identity (path, size, modification time, a hash of its first MiB, rows), the model directory's fingerprint, the
columns and settings, and the backend and precision chosen for the whole run (the auto choices are made once,
from the first chunk and the row count, by the main process). ``--resume`` refuses a state that differs and
reuses its choices, so a resumed run writes what an uninterrupted one would. With WORLD_SIZE > 1 process r
predicts every world_size-th unfinished chunk from the r-th; the main process joins the parts once all are done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from finetext.data.files import EXTENSIONS, format_of
from finetext.errors import FinetextError
from finetext.inference.backend_choice import fingerprint, input_workload, onnx_copy, with_backend
from finetext.inference.classifier import Classifier
from finetext.inference.loader import load_classifier_dir
from finetext.inference.precision import serving_precision
from finetext.inference.predict import predict_logits, predictions_from_logits
from finetext.inference.split_evaluation import check_pairs
from finetext.inference.stream_settings import StreamRequest
from finetext.inference.table_parts import PARTS, PartFormat
from finetext.inference.table_survey import Survey, conformed_chunks, survey_table
from finetext.storage import staged_file, write_json

log = logging.getLogger("finetext")

STATE = "state.json"
STATE_VERSION = 1
HEAD_BYTES = 1 << 20
"""The input's first bytes hashed into its identity (with its size and modification time)."""
TEXT_COLUMNS = ("text", "sentence", "sentence1")
"""Tried in order after the model's own text column when none is given."""


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a launcher (one process: rank 0 of 1)."""

    rank: int
    count: int
    wait: Callable[[], None]

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Columns:
    text: str
    pair: str | None


@dataclass(frozen=True)
class WorkFolder:
    """OUTPUT.parts/: the state and one part per finished chunk."""

    path: Path
    suffix: str

    @property
    def state_file(self) -> Path:
        return self.path / STATE

    def part(self, index: int) -> Path:
        return self.path / f"part-{index:06d}{self.suffix}"

    def finished(self, chunks: int) -> list[int]:
        names = {entry.name for entry in os.scandir(self.path)} if self.path.is_dir() else set()
        return [i for i in range(chunks) if self.part(i).name in names]


def current_processes() -> Processes:
    """Under torchrun / accelerate launch (WORLD_SIZE > 1), joins their process group, as training does."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes(0, 1, lambda: None)
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Processes(state.process_index, state.num_processes, state.wait_for_everyone)


def predict_stream(request: StreamRequest) -> Path:
    """Predict every row of request.input_path into request.output (see the module's docstring); returns it."""
    output = request.output.expanduser()
    part_format = _output_format(output, request)
    clf = load_classifier_dir(str(request.model_dir), request.trust_remote_code, precision=request.precision)
    survey = survey_table(Path(request.input_path).expanduser(), request.chunk_rows, _candidates(clf, request))
    columns = chosen_columns(clf, request, survey)
    check_pairs(clf, columns.pair is not None)
    if survey.mixed and format_of(output).name == "PARQUET":
        raise FinetextError(f"column '{survey.mixed[0]}' of {survey.path} mixes numbers and text, which a Parquet "
                            "column cannot hold.", "Write CSV or JSONL (--output FILE.csv), or give it one type.")
    work = WorkFolder(output.with_name(output.name + ".parts"), output.suffix.lower())
    identity = run_identity(request, survey, columns, output)
    processes = current_processes()
    check_work_folder(work, identity, request)
    processes.wait()  # every process has checked the folder before the main one changes it
    if processes.main:
        start_work_folder(work, identity, request, lambda: decide_choices(clf, request, survey, columns))
    processes.wait()
    clf = with_choices(clf, request.model_dir, _read_state(work)["choices"])
    predict_parts(clf, survey, columns, work, part_format, processes, request)
    processes.wait()
    if processes.main:
        join_parts(work, survey, output, part_format, output_columns(clf, survey.columns))
    return output


def _output_format(output: Path, request: StreamRequest) -> PartFormat:
    table_format = format_of(output)
    if table_format is None:
        raise FinetextError(f"cannot write {output}: unsupported output type '{output.suffix.lower()}'.",
                            f"Use one of {', '.join(EXTENSIONS)}.")
    if request.chunk_rows < 1:
        raise FinetextError(f"--chunk-rows must be at least 1, not {request.chunk_rows}.")
    if request.resume and request.overwrite:
        raise FinetextError("give --resume or --overwrite, not both.",
                            "--resume continues an interrupted prediction, --overwrite starts it again.")
    return PARTS[table_format.name]


def _candidates(clf: Classifier, request: StreamRequest) -> list[str]:
    names = [request.text_column, request.text_pair_column, clf.text_column, *TEXT_COLUMNS, clf.text_pair_column]
    return list(dict.fromkeys(n for n in names if n))


def chosen_columns(clf: Classifier, request: StreamRequest, survey: Survey) -> Columns:
    """The text (and pair) columns, refusing a missing column and empty texts as the whole-file read did."""
    text = request.text_column or next((n for n in (clf.text_column, *TEXT_COLUMNS) if n in survey.columns),
                                       clf.text_column or "text")
    pair = request.text_pair_column or clf.text_pair_column
    for column in filter(None, (text, pair)):
        if column not in survey.columns:
            raise FinetextError(f"column '{column}' not found in {survey.path}; available: "
                                f"{', '.join(survey.columns)}.", "Choose one with --text-column.")
    if survey.rows == 0:
        raise FinetextError(f"{survey.path} has no rows.", "Nothing to predict: check the file.")
    for what, column in (("text", text), ("text pair", pair)):
        bad = survey.texts[column] if column else None
        if bad is not None and bad.count:
            raise FinetextError(f"{bad.count} empty or missing {what}(s), first at position {bad.first}.",
                                "Remove them or fill them in.")
    return Columns(text, pair)


def run_identity(request: StreamRequest, survey: Survey, columns: Columns, output: Path) -> dict:
    """What the parts depend on; a resumed run must match it."""
    path, model = survey.path, Path(request.model_dir)
    stat = path.stat()
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
    return {
        "input": {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "head_sha256": head, "rows": survey.rows},
        "model": {"path": str(model.resolve()), "fingerprint": fingerprint(model) if model.is_dir() else None},
        "settings": {"text_column": columns.text, "text_pair_column": columns.pair,
                     "chunk_rows": request.chunk_rows, "batch_size": request.batch_size,
                     "precision": request.precision, "backend": request.backend, "output": str(output.resolve())},
    }


def check_work_folder(work: WorkFolder, identity: dict, request: StreamRequest) -> None:
    """Refuse to resume what is not there or was made otherwise, and to start over an interrupted prediction
    unasked. Read-only: every process runs it."""
    output = Path(identity["settings"]["output"])
    if request.resume:
        if not work.path.is_dir():
            done = f"{output} is complete" if output.exists() else f"no {work.path.name}/ beside {output}"
            raise FinetextError(f"nothing to resume: {done}.", "Run without --resume.")
        if work.state_file.is_file():
            _check_same_run(work, _read_state(work), identity)
    elif work.path.exists() and not request.overwrite:
        raise FinetextError(f"{work.path} holds an interrupted prediction.",
                            "Pass --resume to continue it, or --overwrite to start over.")


def _check_same_run(work: WorkFolder, saved: dict, identity: dict) -> None:
    for section, values in identity.items():
        for key, value in values.items():
            before = saved.get(section, {}).get(key)
            if before != value:
                raise FinetextError(f"{work.path} was started with {section} {key} {before}, this run has {value}.",
                                    "Resume with the same input, model and flags, or pass --overwrite to start over.")


def _read_state(work: WorkFolder) -> dict:
    try:
        state = json.loads(work.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise FinetextError(f"{work.state_file} is missing or unreadable.", "Pass --overwrite to start over.")
    return state


def start_work_folder(work: WorkFolder, identity: dict, request: StreamRequest,
                      decide: Callable[[], dict[str, str]]) -> None:
    """Main process: a fresh folder (or the interrupted one, without what its killed writes left) and its state."""
    if work.path.exists() and not (request.resume and work.state_file.is_file()):
        shutil.rmtree(work.path)
    work.path.mkdir(parents=True, exist_ok=True)
    for leftover in work.path.glob(".*"):  # staged parts of a killed process
        leftover.unlink(missing_ok=True)
    if not work.state_file.is_file():
        write_json(work.state_file, {"version": STATE_VERSION, **identity, "choices": decide()})


def decide_choices(clf: Classifier, request: StreamRequest, survey: Survey, columns: Columns) -> dict[str, str]:
    """Backend and precision for the whole run, from the first chunk's texts and the row count."""
    first = next(conformed_chunks(survey, {0}))[1]
    pairs = first[columns.pair].tolist() if columns.pair else None
    workload = input_workload(clf, first[columns.text].tolist(), pairs, request.batch_size)
    workload = dataclasses.replace(workload, passes=-(-survey.rows // request.batch_size))
    chosen = with_backend(clf, request.model_dir, request.backend, workload)
    return {"backend": chosen.backend, "precision": serving_precision(chosen, workload)}


def with_choices(clf: Classifier, model_dir: Path, choices: dict) -> Classifier:
    if choices["backend"] == "onnxruntime" and clf.backend != "onnxruntime":
        clf = onnx_copy(Path(model_dir))
    return dataclasses.replace(clf, precision=choices["precision"])


def predict_parts(clf: Classifier, survey: Survey, columns: Columns, work: WorkFolder, part_format: PartFormat,
                  processes: Processes, request: StreamRequest) -> None:
    """This process's share of the unfinished chunks, each written as a part."""
    finished = set(work.finished(survey.chunks))
    todo = [i for i in range(survey.chunks) if i not in finished][processes.rank::processes.count]
    if finished and processes.main:
        log.info("resuming: %d of %d parts were finished", len(finished), survey.chunks)
    if processes.count > 1:
        log.info("process %d of %d predicts %d of the %d parts", processes.rank, processes.count, len(todo),
                 survey.chunks)
    bar = tqdm(total=survey.rows, initial=_rows(survey, finished), unit=" rows", desc="predict", smoothing=0.1,
               disable=not (request.progress and processes.main))
    with bar:
        for index, chunk in conformed_chunks(survey, set(todo)):
            result = add_predictions(clf, chunk, columns.text, columns.pair, request.batch_size)
            with staged_file(work.part(index)) as tmp:
                part_format.write(result, tmp)
            # the main process's bar counts the other processes' parts too
            bar.update(_rows(survey, work.finished(survey.chunks)) - bar.n if processes.count > 1 else len(chunk))


def _rows(survey: Survey, chunks) -> int:
    return sum(survey.chunk_size(i) for i in chunks)


def add_predictions(clf: Classifier, frame: pd.DataFrame, text_column: str, pair_column: str | None = None,
                    batch_size: int = 32) -> pd.DataFrame:
    """frame with predicted_label, score and prob_<label> (multi-label: predicted_labels, joined by the label
    separator or '|', and prob_<label>) added; the texts are length-sorted into batches within the frame."""
    pairs = frame[pair_column].tolist() if pair_column else None
    logits = predict_logits(clf, frame[text_column].tolist(), pairs, batch_size, progress=False)
    records = predictions_from_logits(logits, clf.label_names, clf.multi_label, clf.threshold)
    result = frame.copy()
    if clf.multi_label:
        separator = clf.label_separator or "|"
        result["predicted_labels"] = [separator.join(r["labels"]) for r in records]
    else:
        result["predicted_label"] = [r["label"] for r in records]
        result["score"] = [r["score"] for r in records]
    for name in clf.label_names:
        result[f"prob_{name}"] = [r["probabilities"][name] for r in records]
    return result


def output_columns(clf: Classifier, columns: list[str]) -> list[str]:
    """The input's columns then the predictions' (a prediction column the input has keeps its place)."""
    added = ["predicted_labels"] if clf.multi_label else ["predicted_label", "score"]
    return list(dict.fromkeys([*columns, *added, *(f"prob_{name}" for name in clf.label_names)]))


def join_parts(work: WorkFolder, survey: Survey, output: Path, part_format: PartFormat, columns: list[str]) -> None:
    """Main process, every part finished: the output, written atomically, then the folder removed."""
    parts = [work.part(i) for i in range(survey.chunks)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise FinetextError(f"{len(missing)} part(s) missing in {work.path} ({missing[0]} first).",
                            "Run again with --resume.")
    with staged_file(output) as tmp:
        part_format.join(parts, columns, tmp)
    shutil.rmtree(work.path)
