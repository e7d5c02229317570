"""The HTTP face of a trained model: FastAPI over finetext.inference, concurrent requests pooled by Batcher.

POST /predict takes {"texts": [...]} (plus "text_pairs" for sentence-pair models) and answers a list with
one {"label", "score", "scores"} per text, in order; {"text": "..."} (plus "text_pair") answers one such
object. GET /health and GET /info describe the server; GET /openapi.json is the schema.

Every bad request gets a 4xx with {"detail": "<one line>"}: 400 malformed JSON, 413 a body over
max_body_bytes (refused before it is read), 415 a body that is not JSON, 422 a request the schema refuses
(wrong types, unknown keys, empty or too many texts, a text too long, pairs that do not match the model).
503 (with Retry-After) when too many texts are already waiting or a request times out.
"""

import logging
import socket
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from finetext.artifacts import open_artifact
from finetext.errors import FinetextError
from finetext.inference.backend_choice import serving_workload, with_backend
from finetext.inference.classifier import Classifier
from finetext.inference.loader import load_classifier_dir
from finetext.inference.precision import serving_precision
from finetext.inference.predict import predict_logits, predictions_from_logits
from finetext.serving.batcher import Batcher, Overloaded
from finetext.serving.guard import RequestGuard
from finetext.serving.settings import ServeConfig
from finetext.version import __version__

log = logging.getLogger("finetext")


class Prediction(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Every label's probability.")
    labels: list[str] | None = Field(None, description="Multi-label models: every label at or over the threshold.")


class _PredictRequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def one_form(self):
        """Either one text or a list; pairs only beside their texts, one per text; no blank text."""
        if (self.text is None) == (self.texts is None):
            raise ValueError('give either "text" (one string) or "texts" (a list of strings)')
        if self.text_pair is not None and self.text is None:
            raise ValueError('"text_pair" goes with "text"; with "texts" give "text_pairs"')
        if self.text_pairs is not None and self.texts is None:
            raise ValueError('"text_pairs" goes with "texts"; with "text" give "text_pair"')
        if self.texts is not None and self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.text_pairs)} text_pairs: give one pair per text")
        for key in ("text", "text_pair", "texts", "text_pairs"):
            value = getattr(self, key)
            values = value if isinstance(value, list) else [value] if value is not None else []
            blank = next((i for i, t in enumerate(values) if not t.strip()), None)
            if blank is not None:
                where = f"{key}[{blank}]" if isinstance(value, list) else key
                raise ValueError(f"{where} is empty: every text needs some non-blank characters")
        return self

    def text_lists(self) -> tuple[list[str], list[str] | None]:
        if self.text is not None:
            return [self.text], [self.text_pair] if self.text_pair is not None else None
        return self.texts, self.text_pairs


def request_model(cfg: ServeConfig) -> type[_PredictRequestBase]:
    """The request schema with this server's bounds, so /openapi.json states them too."""
    text = Annotated[str, StringConstraints(min_length=1, max_length=cfg.max_chars)]
    texts = Annotated[list[text], Field(min_length=1, max_length=cfg.max_texts)]
    return create_model(
        "PredictRequest", __base__=_PredictRequestBase,
        text=(text | None, Field(None, description="One text to classify.")),
        text_pair=(text | None, Field(None, description="Its second text (sentence-pair models).")),
        texts=(texts | None, Field(None, description=f"1 to {cfg.max_texts} texts to classify.")),
        text_pairs=(texts | None, Field(None, description="One second text per text (sentence-pair models).")),
    )


def model_info(model_dir: str, clf: Classifier, cfg: ServeConfig) -> dict[str, Any]:
    artifact = open_artifact(model_dir)
    return {
        "model": artifact.config.model.model if artifact.config else artifact.path.name,
        "model_dir": str(artifact.path.resolve()),
        "architecture": (clf.model.config.architectures or [None])[0],
        "backend": clf.backend,
        "labels": clf.label_names,
        "max_length": clf.max_length,
        "long_text": ({"mode": "chunk", "stride": clf.stride, "window_aggregation": clf.window_aggregation}
                      if clf.long_text == "chunk" else {"mode": "truncate"}),
        "text_pairs": clf.text_pair_column is not None,
        "multi_label": clf.multi_label,
        "precision": clf.precision,
        "precision_requested": cfg.precision,
        "max_batch_size": cfg.max_batch_size,
        "limits": cfg.limits(),
        "finetext_version": __version__,
    }


def predictor(clf: Classifier, batch_size: int):
    def predict(texts: list[str], pairs: list[str] | None) -> list[dict]:
        logits = predict_logits(clf, texts, pairs, batch_size, progress=False)
        records = predictions_from_logits(logits, clf.label_names, clf.multi_label, clf.threshold)
        return [{"label": r["label"], "score": r["score"], "scores": r["probabilities"],
                 **({"labels": r["labels"]} if "labels" in r else {})} for r in records]
    return predict


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """One line from pydantic's error list: 400 for JSON that does not parse, 422 for the rest."""
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    loc = [part for part in first.get("loc", ()) if part != "body"]
    if not loc and first.get("type") == "model_attributes_type":
        return 422, 'the body must be a JSON object: {"texts": ["..."]} or {"text": "..."}'
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return 422, f"{where}: {message}{more}" if where else f"{message}{more}"


def create_app(model_dir: str, cfg: ServeConfig | None = None, clf: Classifier | None = None) -> FastAPI:
    """The app for one model directory (a training run, an ONNX export, or a saved HF model)."""
    cfg = cfg or ServeConfig()
    clf = clf or load_classifier_dir(model_dir, cfg.trust_remote_code, cfg.precision)
    workload = serving_workload(clf)
    clf = with_backend(clf, model_dir, cfg.backend, workload)
    clf = replace(clf, precision=serving_precision(clf, workload))
    batcher = Batcher(predictor(clf, cfg.max_batch_size), cfg.max_batch_size, cfg.max_wait_ms / 1000,
                      cfg.max_pending_texts)
    info = model_info(model_dir, clf, cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="finetext", version=__version__, lifespan=lifespan,
                  description=f"Text classification with {info['model']} ({', '.join(clf.label_names)}).")
    app.add_middleware(RequestGuard, max_body_bytes=cfg.max_body_bytes)
    app.state.batcher = batcher
    add_error_handlers(app)
    add_routes(app, clf, cfg, batcher, info)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal and failure as {"detail": one line}; a 500 never carries a traceback."""
    @app.exception_handler(RequestValidationError)
    async def refuse(request, exc: RequestValidationError) -> JSONResponse:
        return error(*validation_message(exc))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error(500, f"internal error: {type(exc).__name__}")


def add_routes(app: FastAPI, clf: Classifier, cfg: ServeConfig, batcher: Batcher, info: dict[str, Any]) -> None:
    """GET /health, GET /info and POST /predict (its request schema carries this server's limits)."""
    predict_request = request_model(cfg)

    @app.get("/health", summary="Liveness, and how much work is queued")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pending_texts": batcher.pending, "batches": batcher.batches,
                "texts_predicted": batcher.texts_done}

    @app.get("/info", summary="The model: labels, max length, whether it takes pairs; the input limits")
    async def get_info() -> dict[str, Any]:
        return info

    @app.post("/predict", summary="Classify one text or a list of texts",
              response_model=list[Prediction] | Prediction, response_model_exclude_none=True,
              responses={400: {"description": "Malformed JSON"}, 413: {"description": "Body too large"},
                         415: {"description": "Body is not JSON"}, 422: {"description": "Invalid request"},
                         503: {"description": "Overloaded or timed out; retry later"}})
    async def predict(request: predict_request):  # type: ignore[valid-type]
        texts, pairs = request.text_lists()
        if not clf.accepts_pairs(pairs is not None):
            return error(422, 'this model classifies single texts: drop "text_pair" / "text_pairs"' if pairs
                         else 'this model classifies sentence pairs: give "text_pair" / "text_pairs" too')
        try:
            results = await batcher.submit(texts, pairs, cfg.request_timeout_s)
        except Overloaded:
            return error(503, f"overloaded: more than {cfg.max_pending_texts} texts are waiting; retry shortly",
                         {"Retry-After": "1"})
        except TimeoutError:
            return error(503, f"timed out after {cfg.request_timeout_s:g} s; retry later", {"Retry-After": "5"})
        return results[0] if request.text is not None else results


def serve(model_dir: str, cfg: ServeConfig) -> None:
    """Load the model, bind the port (a clear error if it is taken), then serve until interrupted."""
    import uvicorn

    sock = bind(cfg.host, cfg.port)  # first: a taken port fails at once, not after loading the model
    try:
        app = create_app(model_dir, cfg)
    except BaseException:
        sock.close()
        raise
    log.info("serving %s on http://%s:%d  (POST /predict, GET /health, GET /info, GET /openapi.json)",
             model_dir, cfg.host, cfg.port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30,
                                           limit_concurrency=1024, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        raise FinetextError(f"cannot listen on {host}:{port}: {exc.strerror}.",
                            "Pass another --port (or --host), or stop what uses it.") from None
    sock.set_inheritable(True)
    return sock
