"""The HTTP face of a trained model: FastAPI over finetext.inference, concurrent requests pooled by Batcher.

POST /predict takes {"texts": [...]} (plus "text_pairs" for sentence-pair models) and answers a list with
one {"label", "score", "scores"} per text, in order; {"text": "..."} (plus "text_pair") answers one such
object. GET /health (alive) and GET /ready (model loaded and warmed up) are for probes; GET /info describes the
model, GET /metrics is Prometheus' text format, GET /openapi.json the schema.

Every bad request gets a 4xx with {"detail": "<one line>"}: 400 malformed JSON, 401 a missing or invalid API key
(when the server has keys), 413 a body over max_body_bytes (refused before it is read), 415 a body that is not
JSON, 422 a request the schema refuses (wrong types, unknown keys, empty or too many texts, a text too long, pairs
that do not match the model). 503 (with Retry-After) while the model loads, when too many texts are already
waiting or a request times out. Every answer carries X-Request-ID.

The layers, outermost first: RequestObserver (request id, access log, metrics), Starlette's error handling,
BearerAuth (with keys), RequestGuard (body size and type), the routes.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from finetext.serving.access_log import access_logger
from finetext.serving.auth import BearerAuth
from finetext.serving.batcher import Batcher, Overloaded
from finetext.serving.guard import RequestGuard
from finetext.serving.metrics import ServerMetrics
from finetext.serving.observe import TEXTS_KEY, Observer, RequestObserver
from finetext.serving.settings import ServeConfig
from finetext.version import __version__

if TYPE_CHECKING:
    from finetext.inference.classifier import Classifier
    from finetext.serving.model import LoadedModel

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


class ModelSlot:
    """The served model: empty until loaded, ready once one warm-up prediction has gone through the batcher."""

    def __init__(self, model_dir: str, cfg: ServeConfig):
        self.model_dir, self.cfg = model_dir, cfg
        self.model: LoadedModel | None = None
        self.ready = False
        self._predict: Callable[[list[str], list[str] | None], list[dict]] | None = None

    def load(self, clf: "Classifier | None" = None) -> None:
        from finetext.serving.model import load_model  # torch: not before the server answers probes

        self.model = load_model(self.model_dir, self.cfg, clf)
        self._predict = self.model.predictor(self.cfg.max_batch_size)

    def predict(self, texts: list[str], pairs: list[str] | None) -> list[dict]:
        assert self._predict is not None, "load() the model first"
        return self._predict(texts, pairs)

    def description(self) -> str:
        if self.model is None:
            return "Text classification with finetext."
        return f"Text classification with {self.model.info['model']} ({', '.join(self.model.clf.label_names)})."


class ObservedAPI(FastAPI):
    """FastAPI with RequestObserver outside everything, Starlette's error handling included: a 500 too carries
    its request id and reaches the access log and the metrics."""

    observers: list[Observer] = []

    def build_middleware_stack(self):
        return RequestObserver(super().build_middleware_stack(), self.observers)


def create_app(model_dir: str, cfg: ServeConfig | None = None, clf: "Classifier | None" = None,
               background: bool = False, on_failure: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The app for one model directory (a training run, an ONNX export, or a saved HF model).

    The model loads now (errors raise here) unless background: then it loads in a thread once the app starts, so
    /health and /ready answer meanwhile; a failure there goes to on_failure. Either way the app starts by one
    warm-up prediction, and GET /ready answers 200 only after it."""
    cfg = cfg or ServeConfig()
    slot = ModelSlot(model_dir, cfg)
    if not background:
        slot.load(clf)
    metrics = ServerMetrics()
    batcher = Batcher(slot.predict, cfg.max_batch_size, cfg.max_wait_ms / 1000, cfg.max_pending_texts,
                      on_batch=metrics.batch_texts.observe, on_pending=metrics.pending_texts.set)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        preparing = asyncio.create_task(prepare(app, slot, batcher, metrics, on_failure))
        if not background:
            await preparing
        yield
        preparing.cancel()
        await asyncio.gather(preparing, return_exceptions=True)
        await batcher.stop()
        metrics.worker_exited()

    app = ObservedAPI(title="finetext", version=__version__, lifespan=lifespan, description=slot.description())
    app.observers = [metrics.observe] + ([access_logger(cfg.log_format)] if cfg.access_log else [])
    app.add_middleware(RequestGuard, max_body_bytes=cfg.max_body_bytes)
    if cfg.api_keys:
        app.add_middleware(BearerAuth, keys=cfg.api_keys)  # added last: runs first, before the body is read
    app.state.batcher, app.state.slot, app.state.metrics = batcher, slot, metrics
    add_error_handlers(app)
    add_routes(app, slot, cfg, batcher, metrics)
    return app


async def prepare(app: FastAPI, slot: ModelSlot, batcher: Batcher, metrics: ServerMetrics,
                  on_failure: Callable[[BaseException], None] | None) -> None:
    """Load the model if it is not yet (in a thread: the event loop keeps answering), then warm it up."""
    try:
        if slot.model is None:
            await asyncio.to_thread(slot.load)
            app.description = slot.description()
        assert slot.model is not None
        metrics.model_load_seconds.set(slot.model.seconds)
        await batcher.submit(*slot.model.warm_up_input(), slot.cfg.request_timeout_s)
    except Exception as exc:
        if on_failure is None:
            raise
        on_failure(exc)
        return
    slot.ready = True


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal and failure as {"detail": one line}; a 500 never carries a traceback."""
    @app.exception_handler(RequestValidationError)
    async def refuse(request, exc: RequestValidationError) -> JSONResponse:
        return error(*validation_message(exc))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error(500, f"internal error: {type(exc).__name__}")


def not_ready() -> JSONResponse:
    return error(503, "the model is loading; retry shortly", {"Retry-After": "1"})


def add_routes(app: FastAPI, slot: ModelSlot, cfg: ServeConfig, batcher: Batcher, metrics: ServerMetrics) -> None:
    """GET /health, /ready, /info and /metrics; POST /predict (its request schema carries this server's limits)."""
    predict_request = request_model(cfg)

    @app.get("/health", summary="Liveness (answers while the model loads too), and how much work is queued")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "ready": slot.ready, "pending_texts": batcher.pending, "batches": batcher.batches,
                "texts_predicted": batcher.texts_done}

    @app.get("/ready", summary="Readiness: 200 once the model is loaded and warmed up, 503 before",
             responses={503: {"description": "The model is loading"}})
    async def ready():
        if not slot.ready:
            return JSONResponse({"status": "loading", "detail": "the model is loading and warming up"},
                                status_code=503, headers={"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/info", summary="The model: labels, max length, whether it takes pairs; the input limits")
    async def get_info():
        return slot.model.info if slot.ready and slot.model is not None else not_ready()

    @app.get("/metrics", summary="Prometheus metrics: requests, latency, batch sizes, texts waiting, load time")
    async def get_metrics() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    @app.post("/predict", summary="Classify one text or a list of texts",
              response_model=list[Prediction] | Prediction, response_model_exclude_none=True,
              responses={400: {"description": "Malformed JSON"}, 401: {"description": "Missing or invalid API key"},
                         413: {"description": "Body too large"}, 415: {"description": "Body is not JSON"},
                         422: {"description": "Invalid request"},
                         503: {"description": "Loading, overloaded or timed out; retry later"}})
    async def predict(request: predict_request, http: Request):  # type: ignore[valid-type]
        texts, pairs = request.text_lists()
        setattr(http.state, TEXTS_KEY, len(texts))
        if not slot.ready or slot.model is None:
            return not_ready()
        if not slot.model.clf.accepts_pairs(pairs is not None):
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
