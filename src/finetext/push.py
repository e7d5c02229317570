"""Publish a finished artifact to the Hugging Face Hub: `finetext push`, `finetext.api.push` and `push_to_hub`.

Nothing heavy is imported here at module level (finetext.config imports check_repo_id from this module):
huggingface_hub and finetext.artifacts are imported inside the functions that need them.

What is uploaded is the artifact folder as it is on disk (config.json, model.safetensors or adapter/, the
tokenizer files, metrics.json, the model card README.md, finetext.yaml, mistakes.json, report.html and
report/), minus what only a run in progress or the machine it ran on needs (PUSH_IGNORE). Every failure is
one FinetextError line: no token, the Hub unreachable, a token that may not write there, any other HTTP error.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from finetext.errors import FinetextError

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_FIX = "Set HF_TOKEN or run `hf auth login` (a token with write access)."
REPO_ID_FIX = "Use USER/NAME."

PUSH_IGNORE = [
    "checkpoints/*",  # resumable state of a run: only for resuming, large
    ".staging-*", "*.staging-*",  # a save in progress (finetext.storage)
    ".adapter-*",  # LoRA's temporary adapter copy while a run saves
    "runs/*",  # tracker logs (TensorBoard's default tracking_dir)
    "__pycache__/*", "*/__pycache__/*",
    "*.tmp",
]
"""upload_folder's ignore_patterns (fnmatch on paths relative to the folder, where * also matches /)."""


def check_repo_id(repo_id: str) -> None:
    """Refuse a Hub repository id that is not NAME or OWNER/NAME by huggingface_hub's rules (letters, digits,
    '-', '_', '.'; no '--' or '..'; not ending in .git; at most 96 characters)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not repo_id:
        raise FinetextError(f"'{repo_id}' is not a Hugging Face Hub repository id.", REPO_ID_FIX)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        why = str(exc).split(":")[0].rstrip(".")
        raise FinetextError(f"'{repo_id}' is not a Hugging Face Hub repository id ({why}).", REPO_ID_FIX) from None


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub to talk to: endpoint, else HF_ENDPOINT as set now (huggingface_hub reads it once, at import),
    else huggingface_hub's, else https://huggingface.co."""
    if endpoint:
        return endpoint.rstrip("/")
    if os.environ.get("HF_ENDPOINT"):
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants

    return (constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")


def check_artifact_folder(artifact_dir: str | Path) -> Path:
    """The folder of a finished finetext training run, or one FinetextError saying what it is instead."""
    from finetext.artifacts import ADAPTER, CARD, CHECKPOINTS, MANIFEST, METRICS, WEIGHTS, open_artifact

    folder = Path(artifact_dir).expanduser()
    fix = "Pass the --output-dir of a finished training run."
    if folder.is_file():
        raise FinetextError(f"{folder} is a file, not a model directory.", fix)
    if not folder.is_dir():
        raise FinetextError(f"model directory not found: {folder}.", fix)
    in_progress = (folder / CHECKPOINTS).is_dir()
    if not (folder / MANIFEST).is_file():
        if in_progress:
            raise FinetextError(f"{folder} holds a training run that has not finished ({CHECKPOINTS}/ but no "
                                f"{MANIFEST}).", "Let it finish (or resume it with --resume), then push.")
        raise FinetextError(f"{folder} is not a finished finetext training run ({MANIFEST} missing).", fix)
    if in_progress:
        raise FinetextError(f"a training run is in progress in {folder}, or was interrupted ({CHECKPOINTS}/ is "
                            "there).", f"Push once it has finished; if no run uses it, delete {folder / CHECKPOINTS}.")
    missing = [name for name in ("config.json", METRICS, CARD) if not (folder / name).is_file()]
    if not (folder / WEIGHTS).is_file() and not (folder / ADAPTER).is_dir():
        missing.append(WEIGHTS)
    if missing:
        raise FinetextError(f"{folder} is not a complete finetext artifact ({', '.join(missing)} missing).",
                            "Rerun training with --overwrite-output-dir.")
    open_artifact(folder)  # config.json and finetext.yaml readable, as predict would need them
    return folder


def push_artifact(artifact_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
                  token: str | None = None, commit_message: str | None = None,
                  endpoint: str | None = None) -> str:
    """Upload a finished artifact folder to the Hub repository repo_id (NAME or OWNER/NAME); return the commit URL.

    The repository is created when missing (``private`` applies only then; an existing one keeps its
    visibility), the branch ``revision`` likewise (from main; default main), and the folder is uploaded as one
    commit, minus PUSH_IGNORE (checkpoints/, staging folders, runs/ tracker logs, __pycache__, *.tmp). The
    token is ``token``, else HF_TOKEN, else the one `hf auth login` stored. ``endpoint`` defaults to
    HF_ENDPOINT (read now) or https://huggingface.co.

    This is the function `push_to_hub: true` calls at the end of training, as
    ``push_artifact(out, cfg.hub_repo_id, cfg.hub_private, cfg.hub_revision)``: on the main process only, and
    after the run's checkpoints/ is deleted (TrainingRun.cleanup), since a folder holding checkpoints/ is
    refused as a run in progress. Refusals and failures are one FinetextError line each.
    """
    check_repo_id(repo_id)
    folder = check_artifact_folder(artifact_dir)
    endpoint = hub_endpoint(endpoint)
    from huggingface_hub import HfApi, get_token

    from finetext.hub import hub_unreachable_reason, quiet_hub_logs

    quiet_hub_logs()
    try:
        token = token or get_token()
    except Exception as exc:  # noqa: BLE001 - e.g. a failed OIDC exchange: one line, the token's fault
        raise FinetextError(f"could not read a Hugging Face token ({_first_line(exc)}).", TOKEN_FIX) from None
    if not token:
        raise FinetextError("no Hugging Face token found to push with.", TOKEN_FIX)
    if reason := hub_unreachable_reason(endpoint):
        raise _unreachable(endpoint, reason)
    api = HfApi(endpoint=endpoint, token=token)
    branch = revision or "main"
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        repo_id = getattr(url, "repo_id", None) or repo_id  # NAME alone: the Hub puts it under the token's user
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model", revision=branch,
                                 commit_message=commit_message or f"Upload {folder.resolve().name} with finetext",
                                 ignore_patterns=list(PUSH_IGNORE))
    except Exception as exc:  # noqa: BLE001 - sorted into one line below; anything else is raised as is
        raise _push_error(exc, repo_id, endpoint) from None
    return str(info.commit_url)


def repo_page(commit_url: str, repo_id: str, revision: str | None = None) -> str:
    """The pushed repository's page (its branch's, for a revision other than main), from the commit URL the Hub
    answered (ENDPOINT/OWNER/NAME/commit/SHA: right also for a NAME the Hub put under the token's user)."""
    page = commit_url.rsplit("/commit/", 1)[0] if "/commit/" in commit_url else f"{hub_endpoint()}/{repo_id}"
    return page if revision in (None, "main") else f"{page}/tree/{revision}"


def _push_error(exc: Exception, repo_id: str, endpoint: str) -> Exception:
    """exc as the FinetextError line the user sees; exc itself when it is no Hub or connection failure."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return _unreachable(endpoint, "HF_HUB_OFFLINE is set")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return FinetextError(f"the Hub refused the upload ({status}): the token may not write to {repo_id}.",
                                 TOKEN_FIX)
        message = exc.server_message or _first_line(exc)
        return FinetextError(f"the Hub answered {status}: {' '.join(message.split())[:300].rstrip('.')}.",
                             f"Check the repository {repo_id} on {endpoint}.")
    if _is_connection_error(exc):
        return _unreachable(endpoint, _first_line(exc) or type(exc).__name__)
    if isinstance(exc, ValueError):  # e.g. the Hub refused README.md's metadata (validate-yaml)
        return FinetextError(f"the Hub refused the upload: {' '.join(str(exc).split())[:300].rstrip('.')}.")
    return exc


def _is_connection_error(exc: BaseException) -> bool:
    """A network failure: from httpx2 (huggingface_hub 1.x and later), httpx or requests, or the OS."""
    import importlib

    kinds: list[type] = [ConnectionError, TimeoutError, socket.gaierror]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        kinds += [getattr(imported, name) for name in names if hasattr(imported, name)]
    return isinstance(exc, tuple(kinds))


def _unreachable(endpoint: str, reason: str) -> FinetextError:
    return FinetextError(f"the Hugging Face Hub at {endpoint} could not be reached ({reason}).",
                         "Connect to the network (unset HF_HUB_OFFLINE) and run `finetext push` again.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
