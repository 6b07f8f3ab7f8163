"""The student over HTTP (FastAPI): one process, one loaded model, bounded requests.

Endpoints: ``POST /v1/score`` (one item), ``POST /v1/score/batch`` (many), ``GET /v1/model`` (labels,
thresholds, task), ``GET /healthz`` and ``GET /metrics`` (Prometheus text format). Scores are exactly
:meth:`smallworld.student.model.Model.scores` for the same texts; decisions follow ``smallworld score``.

Hardening: a bearer token (compared in constant time) guards every endpoint but ``/healthz`` when one is
set, and :func:`serve` refuses to bind a non-loopback address without one. Bodies larger than
``max_body_bytes`` are refused (413) before they are parsed, from Content-Length or while streaming;
batches over ``max_batch`` items and items over ``max_item_bytes`` are refused (413); reading the body and
scoring a batch each have ``timeout_s`` (408 and 503). Malformed requests get a 4xx JSON error
``{"error": ..., "detail": ...}``, never a 500.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import sys
import time
from pathlib import Path
from typing import Literal, Optional, Union

import anyio
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import SmallworldError
from ..student.model import Model

log = logging.getLogger("smallworld.serve")

MAX_BATCH = 10_000
MAX_BODY_BYTES = 16 << 20
MAX_ITEM_BYTES = 1 << 20
TIMEOUT_S = 30.0
ENDPOINTS = ("/v1/score", "/v1/score/batch", "/v1/model", "/healthz", "/metrics", "/openapi.json", "/docs")
SCORE_PATHS = ("/v1/score", "/v1/score/batch")
OPEN_PATHS = ("/healthz",)  # answered without a token (load-balancer probes)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Mode = Literal["best_guess", "high_confidence"]


# -- request and response bodies (also the OpenAPI schema) -------------------------------------------------
class Item(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: StrictStr = Field(description="the item to classify (a command line, a URL, an email, a page)")


class BatchItem(Item):
    id: Optional[Union[StrictStr, StrictInt]] = Field(None, description="echoed back with the item's result")


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    items: list[BatchItem]


class Scored(BaseModel):
    score: float = Field(description="P(positive label)")
    decision: str = Field(description="the positive label if score >= the mode's threshold, else the likeliest other")
    probs: dict[str, float] = Field(description="every label's probability")


class BatchScored(Scored):
    id: Optional[Union[str, int]] = None


class BatchResult(BaseModel):
    results: list[BatchScored]


class Error(BaseModel):
    error: str
    detail: Optional[list] = None


ERRORS = {s: {"model": Error} for s in (400, 401, 408, 413, 415, 422, 503)}


# -- binding and the token -------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: Optional[str], token_env: str = "SMALLWORLD_TOKEN") -> None:
    """Refuse to serve beyond this machine without a token: anyone who can reach the port could score."""
    if not is_loopback(host) and not token:
        raise SmallworldError(f"refusing to serve on {host!r} without a bearer token: set {token_env} to a long "
                              "random secret (clients send 'Authorization: Bearer <token>'), or bind 127.0.0.1")
    if token is not None and not is_loopback(host) and len(token) < 16:
        raise SmallworldError(f"the token in {token_env} is {len(token)} characters; use at least 16 off loopback")


# -- metrics ----------------------------------------------------------------------------------------------
class _Metrics:
    def __init__(self, scorer: Model):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("smallworld_http_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("smallworld_http_request_duration_seconds", "Request latency, body read included",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.items = Counter("smallworld_items_scored", "Items scored", registry=self.registry)
        info = Gauge("smallworld_model_info", "The loaded model (value 1)", ["task", "weights_sha256"],
                     registry=self.registry)
        info.labels(scorer.task.name if scorer.task else "", str(scorer.header.get("weights_sha256", ""))).set(1)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


# -- the guard: metrics, token, body size and read time, before FastAPI parses anything --------------------
async def _send_error(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class _Guard:
    """Pure ASGI middleware (cheap per request): counts and times every request, checks the token, and
    buffers the body up to ``max_body_bytes`` within ``timeout_s`` so the app never sees a larger one."""

    def __init__(self, app, *, token: Optional[str], max_body_bytes: int, timeout_s: float, metrics: _Metrics):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes
        self.timeout = timeout_s
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        t0 = time.perf_counter()
        status = 500

        async def send_(msg):
            nonlocal status
            if msg["type"] == "smallworld.client_gone":  # gave up sending its body: nginx's 499
                status = 499
                return
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self._guarded(scope, receive, send_, path)
        finally:
            self.metrics.observe(endpoint, status, time.perf_counter() - t0)

    def _authorised(self, headers: dict) -> bool:
        scheme, _, cred = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(cred.strip(), self.token)

    async def _guarded(self, scope, receive, send, path):
        headers = dict(scope["headers"])
        if self.token is not None and path not in OPEN_PATHS and not self._authorised(headers):
            return await _send_error(send, 401, "missing or wrong bearer token",
                                     ((b"www-authenticate", b'Bearer realm="smallworld"'),))
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if path in SCORE_PATHS and scope["method"] == "POST" and ctype != b"application/json" \
                and not ctype.endswith(b"+json"):
            return await _send_error(send, 415, "send the body as JSON with Content-Type: application/json")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _send_error(send, 400, "invalid Content-Length")
            if int(length) > self.max_body:
                return await _send_error(send, 413, f"body larger than {self.max_body} bytes")
        chunks, size = [], 0
        with anyio.move_on_after(self.timeout) as waited:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return await send({"type": "smallworld.client_gone"})
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    return await _send_error(send, 413, f"body larger than {self.max_body} bytes")
                chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
        if waited.cancelled_caught:
            return await _send_error(send, 408, f"body not received within {self.timeout:g} s")
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _JSON(JSONResponse):
    """ASCII JSON: an echoed id holding a lone surrogate (valid in JSON input) still encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


# -- errors: one JSON shape, no echo of the client's input (it may not even be text) -----------------------
def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _JSON({"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [{"loc": [x if isinstance(x, (int, str)) else str(x) for x in e.get("loc", ())],
               "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]
    return _JSON({"error": "invalid request body or parameters", "detail": detail}, 422)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return _JSON({"error": "internal error"}, 500)


# -- the app ----------------------------------------------------------------------------------------------
def create_app(model_dir: str | Path, token: Optional[str] = None, max_batch: int = MAX_BATCH,
               max_body_bytes: int = MAX_BODY_BYTES, max_item_bytes: int = MAX_ITEM_BYTES,
               timeout_s: float = TIMEOUT_S) -> FastAPI:
    """The service for the model in ``model_dir``; with ``token``, every endpoint but /healthz needs
    ``Authorization: Bearer <token>``. Binding (and refusing to bind off loopback without a token) is
    :func:`serve`'s job."""
    if token is not None and not token:
        raise SmallworldError("the bearer token is empty")
    if min(max_batch, max_body_bytes, max_item_bytes) < 1 or timeout_s <= 0:
        raise SmallworldError("limits must be positive")
    scorer = Model(model_dir)
    scorer.scores(["warm-up"])  # load the compiled kernel now, not on the first request
    metrics = _Metrics(scorer)
    labels, pos = scorer.labels, scorer.pos
    task = scorer.task.name if scorer.task else None

    def results(texts: list[str], mode: str) -> list[dict]:
        S, P, D = scorer.decide(texts, mode)
        metrics.items.inc(len(texts))
        return [{"score": float(s), "decision": d, "probs": dict(zip(labels, map(float, p)))}
                for s, p, d in zip(S, P, D)]

    def check_item(text: str, where: str) -> None:
        if len(text) > max_item_bytes // 4 and len(text.encode("utf-8", "surrogatepass")) > max_item_bytes:
            raise HTTPException(413, f"{where} is larger than {max_item_bytes} bytes")

    app = FastAPI(title="smallworld", version="1", description=f"Scores with the student in {Path(model_dir).name}",
                  docs_url="/docs", redoc_url=None, default_response_class=_JSON)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(_Guard, token=token, max_body_bytes=max_body_bytes, timeout_s=timeout_s, metrics=metrics)

    async def off_loop(texts: list[str], mode: str) -> list[dict]:
        """Scored in a worker thread within ``timeout_s`` (503 past it): the event loop keeps answering other
        clients while a large item (a 1 MiB page, a mail) is parsed and scored."""
        with anyio.move_on_after(timeout_s) as waited:
            res = await anyio.to_thread.run_sync(results, texts, mode, abandon_on_cancel=True)
        if waited.cancelled_caught:
            raise HTTPException(503, f"scoring took longer than {timeout_s:g} s")
        return res

    @app.post("/v1/score", response_model=Scored, responses=ERRORS)
    async def score_one(item: Item, mode: Mode = Query("best_guess", description="which threshold decides")):
        """Score one item."""
        check_item(item.text, "text")
        return _JSON((await off_loop([item.text], mode))[0])

    @app.post("/v1/score/batch", response_model=BatchResult, responses=ERRORS)
    async def score_batch(batch: Batch, mode: Mode = Query("best_guess", description="which threshold decides")):
        """Score up to max_batch items in one call; results are in request order, with each item's id."""
        if len(batch.items) > max_batch:
            raise HTTPException(413, f"{len(batch.items)} items; at most {max_batch} per batch")
        for i, it in enumerate(batch.items):
            check_item(it.text, f"items[{i}].text")
        res = await off_loop([it.text for it in batch.items], mode)
        for r, it in zip(res, batch.items):
            r["id"] = it.id
        return _JSON({"results": res})

    @app.get("/v1/model")
    async def model_info():
        """The loaded model: task, labels, positive label, family (linear or char_cnn), thresholds, weights
        checksum and the limits."""
        h = scorer.header
        return {"task": task, "labels": list(labels), "positive": labels[pos], "thresholds": scorer.thresholds,
                "family": scorer.family, "dtype": h.get("dtype"), "weights_sha256": h.get("weights_sha256"),
                "limits": {"max_batch": max_batch, "max_body_bytes": max_body_bytes,
                           "max_item_bytes": max_item_bytes, "timeout_s": timeout_s}}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "task": task}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return metrics.render()

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, token: Optional[str] = None,
          token_env: str = "SMALLWORLD_TOKEN", **limits) -> None:
    """Run the service with uvicorn until interrupted (one process; scale out with more processes)."""
    import uvicorn

    check_bind(host, token, token_env)
    app = create_app(model_dir, token=token, **limits)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(f"smallworld: serving {model_dir} on {where} "
          f"({'bearer token required' if token else 'no token: loopback only'})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False,
                timeout_keep_alive=5)
