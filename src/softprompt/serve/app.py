"""The OpenAI-compatible HTTP API on one engine (FastAPI; uvicorn runs it, so does Ray Serve).

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (tokenizers with a chat template),
``GET /v1/models``, ``POST /v1/classify``, ``POST /v1/prompts`` and ``DELETE /v1/prompts/{name}``, ``GET /health``,
``GET /metrics``. ``model`` names a prompt (``base``: the plain backbone). Errors come in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from softprompt.serve import prompt_ensemble
from softprompt.serve import replies as D
from softprompt.serve import responses as R
from softprompt.serve.engine import Engine
from softprompt.serve.guard import Guard
from softprompt.serve.schemas import ChatBody, ClassifyBody, CompletionBody, PromptBody
from softprompt.serve.store import BASE

if TYPE_CHECKING:
    from softprompt.serve.requests import Request as EngineRequest

GENERATE = (400, 401, 404, 413, 422, 429, 503, 504)
"""The error statuses of the inference routes."""

MAX_BODY = 1 << 20
"""Largest request body in bytes (HTTP 413 beyond; ``guard.Guard`` enforces it)."""


class Rows:
    """The engine rows of one HTTP request, their events on this event loop, cancelled together."""

    def __init__(self, engine: Engine):
        self.engine, self.loop = engine, asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.reqs: list = []
        self.submitted = 0

    def sink(self, index: int) -> Callable[[dict], None]:
        def put(event: dict) -> None:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, event))

        return put

    def start(self, make: Iterable[Callable[..., EngineRequest]]) -> None:
        """``make`` builds each request from its sink; all are submitted, or none stays queued."""
        try:
            for m in make:
                self.reqs.append(m(self.sink(len(self.reqs))))
            for r in self.reqs:
                self.engine.submit(r)
                self.submitted += 1
        except Exception:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Free every row's slot (the engine drops cancelled rows at its next step)."""
        for i, r in enumerate(self.reqs):
            if i < self.submitted:
                r.cancel()
            elif not r.finished:  # built but never queued: release its prompt version here
                r.finished = True
                self.engine.store.release(r.entry)

    async def events(self, request: Request) -> AsyncIterator[tuple[int, dict]]:
        """(index, event) until every row ended; cancels the rows when the client disconnects."""
        open_rows, checked = len(self.reqs), time.monotonic()
        try:
            while open_rows:
                try:
                    i, ev = await asyncio.wait_for(self.queue.get(), 0.5)
                except TimeoutError:
                    i = ev = None
                if time.monotonic() - checked > 0.5:  # tokens may keep coming: look every half second
                    checked = time.monotonic()
                    if await request.is_disconnected():
                        return
                if ev is None:
                    continue
                if ev["type"] in ("done", "error", "scores"):
                    open_rows -= 1
                yield i, ev
        finally:
            if open_rows:
                self.cancel()


def create_app(
    engine: Engine, *, api_key: str | None = None, max_body: int = MAX_BODY, parent: str = ""
) -> FastAPI:
    """The app serving ``engine``; ``api_key``: bearer token required on /v1 (None: open)."""
    app = FastAPI(title="softprompt", docs_url=None, redoc_url=None)
    app.add_middleware(Guard, api_key=api_key, max_body=max_body)

    @app.exception_handler(R.ApiError)
    async def _api_error(request, e: R.ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request, e: RequestValidationError):
        err = R.invalid_body(e.errors())
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(
        request, e: StarletteHTTPException
    ):  # FastAPI's own: body not parsed, no route, ...
        err = R.http_error(e.status_code, str(e.detail))
        return JSONResponse(err.body(), status_code=err.status, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _any_error(request, e: Exception):
        err = R.api_error(e)
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    _add_admin_routes(app, engine, parent)
    _add_inference_routes(app, engine)
    D.state_limits(app, engine)
    return app


def _add_admin_routes(app: FastAPI, engine: Engine, parent: str) -> None:
    """/health, /metrics, /v1/models and adding / removing prompts."""

    @app.get("/health", responses=D.documented(body=D.Health))
    async def health():
        return {"status": "ok", "prompts": len(engine.store.names()), "pid": os.getpid(), **engine.stats()}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        return Response(engine.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", responses=D.documented(401, body=D.ModelList))
    async def models():
        return {
            "object": "list",
            "data": [_model_card(None, parent)] + [_model_card(e, parent) for e in engine.store.entries()],
        }

    @app.post(
        "/v1/prompts", status_code=201, responses=D.documented(400, 401, 413, 422, ok=201, body=D.ModelCard)
    )
    async def add_prompt(body: PromptBody):
        try:
            entry = await asyncio.to_thread(
                engine.store.add_kept, body.name, engine.store.inside_root(body.path)
            )
        except Exception as e:
            raise R.api_error(e, "path") from None
        return _model_card(entry, parent)

    @app.delete("/v1/prompts/{name}", responses=D.documented(401, 404, 409, body=D.Deleted))
    async def remove_prompt(name: str):
        try:
            await asyncio.to_thread(engine.store.remove_kept, name)
        except Exception as e:
            raise R.api_error(e, "name") from None
        return {"id": name, "object": "model", "deleted": True}


def _add_inference_routes(app: FastAPI, engine: Engine) -> None:
    """/v1/classify, /v1/completions and /v1/chat/completions."""
    tok = engine.tok

    @app.post("/v1/classify", responses=D.documented(*GENERATE, body=D.Classification))
    async def classify(body: ClassifyBody, request: Request):
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            raise R.ApiError(
                400,
                "input is empty; give a string or a non-empty list of strings",
                param="input",
                code="invalid_value",
            )
        data = await prompt_ensemble.classify(Rows(engine), request, texts, body)
        if data is None:
            return Response(status_code=499)
        return {"id": R.new_id("clf"), "object": "list", "model": body.model, "data": data}

    @app.post("/v1/completions", responses=D.documented(*GENERATE, body=D.Completion, stream=True))
    async def completions(body: CompletionBody, request: Request):
        prompts = _prompt_ids(tok, body.prompt)
        return await _serve(engine, request, body, prompts, chat=False)

    @app.post("/v1/chat/completions", responses=D.documented(*GENERATE, body=D.ChatCompletion, stream=True))
    async def chat(body: ChatBody, request: Request):
        if not getattr(tok, "chat_template", None):
            raise R.ApiError(
                400,
                "the model's tokenizer has no chat template; use /v1/completions",
                param="messages",
                code="no_chat_template",
            )
        text = tok.apply_chat_template(
            [m.model_dump() for m in body.messages], add_generation_prompt=True, tokenize=False
        )
        return await _serve(
            engine, request, body, [tok(text, add_special_tokens=False)["input_ids"]], chat=True
        )


def _model_card(entry, parent: str) -> dict:
    if entry is None:
        return {
            "id": BASE,
            "object": "model",
            "created": 0,
            "owned_by": "softprompt",
            "method": None,
            "virtual_tokens": 0,
            "parent": parent,
            "root": parent,
        }
    return {
        "id": entry.name,
        "object": "model",
        "created": int(entry.path.stat().st_mtime) if entry.path else 0,
        "owned_by": "softprompt",
        "method": entry.method,
        "virtual_tokens": entry.virtual_tokens,
        "parent": parent,
        "root": parent,
        "version": entry.version,
        "classify": entry.labels,
    }


def _prompt_ids(tok, prompt) -> list[list[int]]:
    if isinstance(prompt, str):
        return [tok(prompt)["input_ids"]]
    if not prompt:
        raise R.ApiError(400, "prompt is an empty list", param="prompt", code="invalid_value")
    if isinstance(prompt[0], int):
        return [list(prompt)]
    if isinstance(prompt[0], str):
        return [tok(p)["input_ids"] for p in prompt]
    return [list(p) for p in prompt]


async def _serve(
    engine: Engine, request: Request, body: CompletionBody | ChatBody, prompts: list[list[int]], *, chat: bool
):
    if isinstance(body, ChatBody):  # (chat is True)
        top = (body.top_logprobs or 0) if body.logprobs else None
    else:
        top = body.logprobs
    params = dict(
        max_tokens=body.new_tokens(),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stops(),
        seed=body.seed,
        logprobs=top,
    )
    model = None if body.model == BASE else body.model
    rows = Rows(engine)
    try:
        rows.start(
            [
                lambda s, ids=ids: engine.completion(ids, model, sink=s, **params)
                for ids in prompts
                for _ in range(body.n)
            ]
        )
    except Exception as e:
        raise R.api_error(e, "messages" if chat else "prompt") from None
    from softprompt.serve.stream import collect, sse

    rid = R.new_id("chatcmpl" if chat else "cmpl")
    if body.stream:
        include = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            sse(engine.tok, rows, request, rid, body.model, chat, include), media_type="text/event-stream"
        )
    return await collect(engine.tok, rows, request, rid, body.model, chat)
