"""The HTTP server of ``nlpseq-serve``: :func:`create_app` builds the FastAPI app around a model factory.

Routes: ``POST /predict`` ``{"inputs": [...]}`` -> ``{"predictions": [...]}`` (what the predictor's ``predict``
returns for those inputs), ``GET /health`` (the process answers), ``GET /ready`` (503 until the model is loaded:
it loads on the worker thread after the server starts listening), ``GET /info`` (task, labels, config digest,
settings and batching counters). Every error is ``{"error": "<one line>"}``: 400 for a body that is not the
expected JSON, 413 for one over ``max_body_bytes``, 422 for inputs out of bounds or refused by the predictor,
503 while loading or when the queue is full. Input never ends the process.

FastAPI is an optional extra (``pip install 'nlpseq[serve]'``), imported only here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

from nlpseq.errors import ConfigError, NlpseqError
from nlpseq.serve_batching import Batcher, BatchingSettings, Job, Outcome, QueueFull

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
except ImportError as e:  # pragma: no cover - exercised by tests with the module hidden
    raise NlpseqError(f"nlpseq-serve needs FastAPI and uvicorn ({e.name} is missing): "
                      "pip install 'nlpseq[serve]'") from None

log = logging.getLogger("nlpseq.serve")

TEXT_TASKS = ("ner", "sentiment", "translation")  # their inputs are texts, checked here before the model sees them
JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
              float: "a number", type(None): "null"}


@dataclass(frozen=True)
class ServeSettings:
    checkpoint: str | None = None  # shown by /info
    backend: str = "auto"
    device: str = "cpu"
    num_threads: int | None = 1
    max_inputs: int = 64  # inputs per request
    max_input_chars: int = 2000  # characters per text
    max_body_bytes: int = 1 << 20
    batching: BatchingSettings = field(default_factory=BatchingSettings)

    @classmethod
    def from_config(cls, cfg, num_threads: int | None = None) -> ServeSettings:
        """The settings of ``serve.yaml`` (a DictConfig or dict), checked: a :class:`ConfigError` names the key."""
        b, p = cfg["batching"], "batching."
        batching = BatchingSettings(bool(b["enabled"]), _count(b, "max_batch_size", p),
                                    _count(b, "max_wait_ms", p, 0, float), _count(b, "queue_size", p))
        return cls(None if cfg.get("checkpoint") is None else str(cfg["checkpoint"]), str(cfg.get("backend", "torch")),
                   str(cfg.get("device", "cpu")), num_threads, _count(cfg, "max_inputs"),
                   _count(cfg, "max_input_chars"), _count(cfg, "max_body_bytes"), batching)


def _count(cfg, key: str, prefix: str = "", least: float = 1, kind=int):
    value = cfg[key]
    whole = not isinstance(value, float) or kind is float
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not whole or value < least:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{prefix}{key} must be {what} >= {least:g}, got {value!r}")
    return kind(value)


class BadRequest(NlpseqError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, settings: ServeSettings, text_inputs: bool = True, counted: bool = True) -> list:
    """The ``inputs`` list of a ``/predict`` body; :class:`BadRequest` (status and one-line reason) otherwise.

    ``text_inputs``: each input must be a non-empty text of at most ``max_input_chars``; ``counted``: at most
    ``max_inputs`` of them (not for a forecaster, whose inputs are the rows of one history: ``max_body_bytes``
    bounds those)."""
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not UTF-8 text; expected JSON {\"inputs\": [...]}") from None
    except json.JSONDecodeError as e:
        raise BadRequest(400, f"body is not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                         "expected {\"inputs\": [...]}") from None
    except RecursionError:
        raise BadRequest(400, "body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, f"body is {_kind(payload)}; expected a JSON object {{\"inputs\": [...]}}")
    unknown = sorted(set(payload) - {"inputs"})
    if unknown:
        raise BadRequest(400, f"unknown field {unknown[0]!r}; the body takes only \"inputs\"")
    if "inputs" not in payload:
        raise BadRequest(400, "missing field \"inputs\"; expected {\"inputs\": [...]}")
    inputs = payload["inputs"]
    if not isinstance(inputs, list):
        raise BadRequest(400, f"\"inputs\" is {_kind(inputs)}; expected a list")
    if not inputs or counted and len(inputs) > settings.max_inputs:
        raise BadRequest(422, f"\"inputs\" has {len(inputs)} entries; expected 1 to {settings.max_inputs} "
                         "(max_inputs)")
    if text_inputs:
        for i, text in enumerate(inputs):
            _check_text(i, text, settings.max_input_chars)
    return inputs


def _no_constant(name: str):
    raise BadRequest(400, f"body holds {name}, which is not JSON; send finite numbers")


def _kind(value) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def _check_text(i: int, text, max_chars: int) -> None:
    if not isinstance(text, str):
        raise BadRequest(400, f"inputs[{i}]: {_kind(text)}; expected a non-empty string")
    if not text.strip():
        raise BadRequest(422, f"inputs[{i}]: empty text; expected a non-empty string")
    if len(text) > max_chars:
        raise BadRequest(422, f"inputs[{i}]: {len(text)} characters; at most {max_chars} (max_input_chars)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
        raise BadRequest(422, f"inputs[{i}]: not valid Unicode (an unpaired surrogate escape)") from None


class ServedModel:
    """A loaded predictor as the server uses it: ``predict(inputs) -> list`` and the facts ``/info`` shows.

    ``predictor`` is an nlpseq predictor (``nlpseq.load``), or any object with ``predict(inputs: list) -> list``
    and, to describe itself, ``serving_info() -> dict`` (task, labels, config_sha256): the room for other
    backends (an exported ONNX bundle) behind the same server.
    """

    def __init__(self, predictor):
        self.predictor = predictor
        info = predictor.serving_info() if hasattr(predictor, "serving_info") else describe(predictor)
        self.info = {k: info.get(k) for k in ("task", "labels", "config_sha256")}
        if info.get("device"):
            self.info["device"] = info["device"]
        self.text_inputs = self.info["task"] in TEXT_TASKS
        self.mergeable = bool(info.get("mergeable", self.info["task"] != "forecast"))  # forecast: 1 history -> rows

    def predict(self, inputs: list) -> list:
        return self.predictor.predict(inputs)


def describe(predictor) -> dict:
    """Task name, labels and the sha256 of the config (sorted JSON) of an nlpseq predictor; the task name alone
    for a predictor whose ``task`` is a string (the ONNX runtime's)."""
    from omegaconf import OmegaConf

    task = getattr(predictor, "task", None)
    if task is None or isinstance(task, str):
        return {"task": task, "labels": None, "config_sha256": None}
    labels = {"ner": lambda: task.labels.itos, "sentiment": lambda: task.names,
              "forecast": lambda: task.output_columns}.get(task.name, lambda: None)()
    config = json.dumps(OmegaConf.to_container(task.cfg, resolve=True), sort_keys=True, separators=(",", ":"))
    parameter = next(predictor.model.parameters(), None) if hasattr(predictor, "model") else None
    return {"task": task.name, "labels": list(labels) if labels is not None else None,
            "config_sha256": hashlib.sha256(config.encode("utf-8")).hexdigest(),
            "device": str(parameter.device) if parameter is not None else None}


def render(status: int, body: dict, headers: dict | None = None) -> Response:
    """JSON with non-ASCII text as is; NaN and infinity are refused (they are not JSON)."""
    try:
        data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate in a non-text input echoed back: escape it
        data = json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
    return Response(data, status, headers, media_type="application/json")


def error(status: int, message: str, retry_after: int | None = None) -> Response:
    return render(status, {"error": message}, {"Retry-After": str(retry_after)} if retry_after else None)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body is {int(declared)} bytes; at most {limit} (max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body is over {limit} bytes (max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(predictor_factory: Callable[[], object], settings: ServeSettings,
               on_load_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The app; ``predictor_factory()`` is called once on the worker thread after startup (so ``/health``
    answers while it loads) and returns an nlpseq predictor or any object with ``predict(inputs) -> list``.
    ``on_load_failure(message)`` is called if it raises (the command stops the server then)."""
    batcher = Batcher(lambda: ServedModel(predictor_factory()), settings.batching, on_load_failure)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)  # the worker ends after its current batch

    app = FastAPI(title="nlpseq", lifespan=lifespan)
    app.state.batcher, app.state.settings = batcher, settings

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:  # 404, 405: the same {"error"} shape
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.get("/health")
    async def health() -> Response:
        return render(200, {"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        if batcher.ready:
            return render(200, {"ready": True})
        return render(503, {"ready": False, "error": batcher.load_error or "model is loading"})

    @app.get("/info")
    async def info() -> Response:
        model = batcher.model
        facts = model.info if model is not None else {"task": None, "labels": None, "config_sha256": None}
        return render(200, {"checkpoint": settings.checkpoint, "backend": settings.backend,
                            "device": settings.device, **facts, "num_threads": settings.num_threads,
                            "max_inputs": settings.max_inputs, "max_input_chars": settings.max_input_chars,
                            "max_body_bytes": settings.max_body_bytes, "batching": asdict(settings.batching),
                            "ready": batcher.ready, "queued": batcher.queued, "stats": batcher.stats.snapshot()})

    @app.post("/predict", openapi_extra=PREDICT_SCHEMA)
    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        response = await _predict(request, batcher, settings)
        log.debug("POST /predict -> %d in %.1f ms", response.status_code, (time.perf_counter() - start) * 1e3)
        return response

    return app


async def _predict(request: Request, batcher: Batcher, settings: ServeSettings) -> Response:
    model = batcher.model
    if model is None:
        return error(503, batcher.load_error or "model is loading; retry when GET /ready answers 200", retry_after=1)
    try:
        body = await read_body(request, settings.max_body_bytes)
        inputs = parse_request(body, settings, model.text_inputs, counted=model.mergeable)
    except BadRequest as e:
        return error(e.status, str(e))
    except ClientDisconnect:  # the client left while sending: nobody reads the answer
        return error(400, "client disconnected")
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Outcome] = loop.create_future()

    def done(outcome: Outcome) -> None:  # on the worker thread
        try:
            loop.call_soon_threadsafe(_settle, future, outcome)
        except RuntimeError:  # the event loop has closed: nobody waits for this answer any more
            pass

    try:
        batcher.submit(Job(inputs, done, alive=lambda: not future.done()))
    except QueueFull as e:
        return error(503, str(e), retry_after=1)
    outcome = await future
    if outcome.status != 200:
        return error(outcome.status, outcome.error or "prediction failed")
    try:
        return render(200, {"predictions": outcome.predictions})
    except ValueError:  # NaN or infinity in a prediction (e.g. inputs of 1e308)
        return error(422, "the inputs gave a non-finite prediction (NaN or infinity); check their values")


def _settle(future: asyncio.Future, outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


PREDICT_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"], "additionalProperties": False,
    "properties": {"inputs": {"type": "array", "minItems": 1,
                              "description": "texts (ner, sentiment, translation); sequences (memory); "
                                             "history rows (forecast)"}}}}}}}
