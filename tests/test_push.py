"""finetext push: what the Hugging Face Hub receives, recorded by a loopback server that imitates the Hub endpoints
huggingface_hub calls (create repo, create branch, validate the card's YAML, preupload, commit), and the one-line
errors: offline, unreachable, no token, a token that may not write, a bad repository id, a folder that is no
finished artifact. The real Hub is not reachable from the machines these tests run on."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import tiny_run

import finetext
from finetext.cli import main
from finetext.push import check_repo_id, push_artifact

TOKEN = "hf_loopback_test_token"
REPO = r"(?P<repo>[^/]+/[^/]+)"


class FakeHub(ThreadingHTTPServer):
    """The few Hub routes huggingface_hub uses to create a repository and a branch and to upload a folder. It
    answers the preupload with the "regular" upload mode for every file, so the commit carries each file inline
    (base64 in the NDJSON body) and the test can compare the bytes. Every request is recorded."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[dict] = []
        self.commits: list[dict] = []
        self.unauthorized = False

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if self.unauthorized:
            return 401, {"error": "Invalid username or password."}
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            repo = f"{payload.get('organization') or 'tester'}/{payload['name']}"
            return 200, {"url": f"{self.url}/{repo}", "name": repo, "id": "0" * 24}
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if method == "POST" and re.fullmatch(rf"/api/models/{REPO}/branch/[^/]+", path):
            return 200, {}
        if method == "POST" and re.fullmatch(rf"/api/models/{REPO}/preupload/[^/]+", path):
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                   for f in files]}
        if method == "POST" and (match := re.fullmatch(rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", path)):
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            files = {item["value"]["path"]: base64.b64decode(item["value"]["content"])
                     for item in lines if item["key"] == "file"}
            self.commits.append({"revision": match["rev"], "header": lines[0]["value"], "files": files,
                                 "keys": {item["key"] for item in lines}})
            oid = hashlib.sha1(body).hexdigest()
            return 200, {"success": True, "commitOid": oid, "commitUrl": f"{self.url}/{match['repo']}/commit/{oid}",
                         "pullRequestUrl": None}
        return 404, {"error": f"no route {method} {path}"}


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_any(self) -> None:
        body = self.body()
        path, _, query = self.path.partition("?")
        self.server.requests.append({"method": self.command, "path": path, "query": query,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        status, answer = self.server.answer(self.command, path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Error-Message", answer["error"])
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


@pytest.fixture
def hub(monkeypatch):
    """A running FakeHub, with huggingface_hub online (the test session runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory) -> Path:
    """A finished artifact of the tiny model, which starts from a copy laid out like the Hugging Face cache's
    (models--OWNER--NAME/snapshots/REV): the card names OWNER/NAME as its base_model."""
    root = tmp_path_factory.mktemp("push")
    base = root / "hub" / "models--finetext-test--tiny-bert" / "snapshots" / "0123456789abcdef"
    shutil.copytree(tiny_model, base)
    out = root / "model"
    finetext.train(tiny_run(str(base), out, dataset="sst2", epochs=1))
    return out


@pytest.fixture
def artifact(trained, tmp_path) -> Path:
    """A copy of the artifact with what a push leaves behind: tracker logs, a staging folder, temporary files."""
    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    (folder / "runs" / "run-1").mkdir(parents=True)
    (folder / "runs" / "run-1" / "events.out.tfevents.1").write_bytes(b"tensorboard")
    (folder / ".staging-abc").mkdir()
    (folder / ".staging-abc" / "config.json").write_text("{}")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (folder / "upload.tmp").write_text("partial")
    return folder


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_push_sends_the_artifact_and_a_card_the_hub_parses(artifact, hub):
    from huggingface_hub import ModelCard

    url = push_artifact(artifact, "tester/tiny-classifier", private=True, revision="experiment", token=TOKEN,
                        endpoint=hub.url)

    assert hub.paths() == ["POST /api/repos/create", "POST /api/models/tester/tiny-classifier/branch/experiment",
                           "POST /api/validate-yaml", "POST /api/models/tester/tiny-classifier/preupload/experiment",
                           "POST /api/models/tester/tiny-classifier/commit/experiment"]
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    created = json.loads(hub.requests[0]["body"])
    assert created == {"name": "tiny-classifier", "organization": "tester", "visibility": "private", "type": "model"}
    (commit,) = hub.commits
    assert url == f"{hub.url}/tester/tiny-classifier/commit/{hashlib.sha1(hub.requests[-1]['body']).hexdigest()}"
    assert commit["revision"] == "experiment" and commit["keys"] == {"header", "file"}

    sent = commit["files"]
    on_disk = {p.relative_to(artifact).as_posix(): p.read_bytes() for p in artifact.rglob("*") if p.is_file()}
    left_out = {"runs/run-1/events.out.tfevents.1", ".staging-abc/config.json", "__pycache__/x.cpython-311.pyc",
                "upload.tmp"}
    assert set(sent) == set(on_disk) - left_out
    assert all(sent[name] == on_disk[name] for name in sent)  # byte for byte
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.json",
            "README.md", "finetext.yaml", "mistakes.json", "report.html"} <= set(sent)
    assert any(name.startswith("report/") and name.endswith(".png") for name in sent)
    assert not any(name.startswith(("checkpoints/", "runs/")) for name in sent)

    card = ModelCard(sent["README.md"].decode())
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert data.base_model == "finetext-test/tiny-bert" and data.datasets == ["nyu-mll/glue"]
    assert data.language == "en" and data.tags == ["finetext", "text-classification"]
    assert "license" not in data.to_dict()
    metrics = json.loads(on_disk["metrics.json"])
    scores = {r.metric_type: r.metric_value for r in data.eval_results}
    final = metrics["final"]["validation"]
    assert scores == {"accuracy": round(final["accuracy"], 4), "f1": round(final["f1"], 4),
                      "precision": round(final["precision"], 4), "recall": round(final["recall"], 4),
                      "matthews_correlation": round(final["mcc"], 4)}
    assert {(r.task_type, r.dataset_type, r.dataset_config, r.dataset_split) for r in data.eval_results} == {
        ("text-classification", "nyu-mll/glue", "sst2", "validation")}  # this sample's test split has no labels
    assert data.model_name == "model" and data["finetext"]["label_names"] == metrics["label_names"]
    widget = data["widget"][0]["text"]
    assert widget and widget.rstrip(" .") in on_disk["README.md"].decode()
    assert "| validation | 48 |" in card.text  # the body is still there


def test_cli_push_reads_hf_endpoint_and_token_now_and_prints_the_repository(trained, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(trained), "--repo-id", "tester/tiny", "--commit-message", "first model"]) == 0
    out = capsys.readouterr().out.strip()
    commit = hub.commits[0]
    assert out.startswith(f"pushed {trained} to {hub.url}/tester/tiny (main, {hub.url}/tester/tiny/commit/"), out
    assert commit["revision"] == "main" and commit["header"]["summary"] == "first model"
    assert json.loads(hub.requests[0]["body"])["visibility"] == "public"
    assert not any("/branch/" in path for path in hub.paths())  # main exists: no branch to create
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)


def test_api_push_returns_the_commit_url(trained, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    url = finetext.api.push(trained, "tester/api", revision="v1", token=TOKEN)
    assert url.startswith(f"{hub.url}/tester/api/commit/") and hub.commits[0]["revision"] == "v1"


def test_a_token_that_may_not_write_is_one_line(trained, hub, monkeypatch, capsys):
    hub.unauthorized = True
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_read_only")
    assert main(["push", str(trained), "--repo-id", "tester/tiny"]) == 2
    line = one_error(capsys)
    assert "the token may not write to tester/tiny" in line and "HF_TOKEN" in line, line
    assert hub.commits == []


def test_offline_is_one_line_and_exit_2(trained, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as conftest sets it for every test
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["push", str(trained), "--repo-id", "tester/tiny"]) == 2
    line = one_error(capsys)
    assert "Hub at http://127.0.0.1:9 could not be reached (HF_HUB_OFFLINE is set)" in line, line


def test_unreachable_hub_is_one_line_naming_it(trained, hub, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(trained), "--repo-id", "tester/tiny"]) == 2
    line = one_error(capsys)
    assert f"the Hugging Face Hub at {closed} could not be reached (cannot connect to 127.0.0.1" in line, line


def test_no_token_is_one_line(trained, hub, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert main(["push", str(trained), "--repo-id", "tester/tiny"]) == 2
    line = one_error(capsys)
    assert "no Hugging Face token" in line and "Set HF_TOKEN or run `hf auth login`" in line, line
    assert hub.requests == []


def unfinished(tmp_path: Path, files: tuple[str, ...]) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    for name in files:
        path = folder / name
        if name.endswith("/"):
            path.mkdir()
        else:
            path.write_text("{}" if name.endswith(".json") else "model: scratch\n")
    return folder


REFUSALS = {
    "missing": ((), "model directory not found"),
    "no manifest": (("config.json", "metrics.json"),
                    "is not a finished finetext training run (finetext.yaml missing)"),
    "interrupted": (("checkpoints/",), "holds a training run that has not finished (checkpoints/ but no "
                                       "finetext.yaml)"),
    "in progress": (("finetext.yaml", "config.json", "checkpoints/"), "a training run is in progress in"),
    "no weights": (("finetext.yaml", "config.json", "metrics.json", "README.md"),
                   "is not a complete finetext artifact (model.safetensors missing)"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_folder_that_is_no_finished_artifact_is_one_line(case, tmp_path, monkeypatch, capsys):
    files, message = REFUSALS[case]
    folder = unfinished(tmp_path, files) if files else tmp_path / "missing"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(folder), "--repo-id", "tester/tiny"]) == 2
    assert message in one_error(capsys)


@pytest.mark.parametrize("repo_id", ["a/b/c", "bad name", "tester/x--y", "tester/model.git", "tester/-x"])
def test_a_bad_repo_id_is_one_line(repo_id, tmp_path, capsys):
    assert main(["push", str(tmp_path), "--repo-id", repo_id]) == 2
    line = one_error(capsys)
    assert f"'{repo_id}' is not a Hugging Face Hub repository id" in line and line.endswith("Use USER/NAME."), line


def test_check_repo_id_accepts_hub_ids():
    for good in ("tester/tiny", "tiny", "Org-1/model_v2.1"):
        check_repo_id(good)


def test_the_card_leaves_out_what_it_cannot_know(trained):
    """Local data: no datasets, no language, the file's name but not its path; a pair task: no widget; a model
    that is no Hub id: no base_model. The header still parses."""
    from dataclasses import replace

    from huggingface_hub import ModelCard

    from finetext.artifacts import read_config
    from finetext.evaluation.model_card import model_card
    from finetext.evaluation.run_metrics import read_run_metrics

    cfg = read_config(trained / "finetext.yaml")
    cfg = replace(cfg, data=replace(cfg.data, dataset=None, train_file="/private/data/reviews.csv",
                                    text_pair_column="answer"),
                  model=replace(cfg.model, model=str(trained.parent / "hub")))  # a local folder, no cache layout
    text = model_card(cfg, read_run_metrics(trained / "metrics.json"), example_text="a question")
    data = ModelCard(text).data.to_dict()
    assert not {"base_model", "datasets", "language", "license", "widget"} & set(data), data
    (result,) = data["model-index"][0]["results"]
    assert result["dataset"] == {"name": "reviews.csv", "type": "reviews.csv", "split": "validation"}
    assert "/private/data" not in text.split("\n---\n")[0]


def test_train_with_push_to_hub_uploads_the_finished_artifact(tiny_model, tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "model"
    finetext.train(tiny_run(tiny_model, out, dataset="sst2", epochs=1, push_to_hub=True, hub_repo_id="tester/at-end",
                            hub_private=True))
    sent = hub.commits[0]["files"]
    assert sent["metrics.json"] == (out / "metrics.json").read_bytes()
    assert sent["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert not any(name.startswith("checkpoints/") for name in sent)  # pushed after the checkpoints were removed
    assert json.loads(hub.requests[0]["body"])["visibility"] == "private"


def test_a_failed_push_after_training_keeps_the_model_and_says_how_to_retry(tiny_model, tmp_path, hub, monkeypatch,
                                                                            capsys):
    hub.unauthorized = True
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_read_only")
    out = tmp_path / "model"
    assert main(["train", "--model", tiny_model, "--dataset", "sst2", "--output-dir", str(out), "--epochs", "1",
                 "--train-samples", "64", "--max-length", "32", "--quiet", "--push-to-hub", "--hub-repo-id",
                 "tester/at-end"]) == 2
    line = one_error(capsys)
    assert f"the model is saved in {out}, but the upload failed" in line, line
    assert f"Then run `finetext push {out} --repo-id tester/at-end`" in line, line
    assert (out / "finetext.yaml").is_file()


def test_a_bad_repo_id_for_push_to_hub_is_refused_before_training(tiny_model, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--model", tiny_model, "--dataset", "sst2", "--output-dir", str(out), "--push-to-hub",
                 "--hub-repo-id", "a/b/c"]) == 2
    assert "'a/b/c' is not a Hugging Face Hub repository id" in one_error(capsys)
    assert not out.exists()
    assert main(["train", "--dataset", "sst2", "--push-to-hub"]) == 2
    assert "push_to_hub needs hub_repo_id" in one_error(capsys)
