"""Response bodies of the HTTP API, typed for ``/openapi.json`` only (the app builds plain dicts): each route
documents its success body and every error status it can answer with, in OpenAI's error shape.

The error catalogue (``ERRORS``) is the one list of statuses the API refuses with; tests/serve/test_schemathesis.py
fuzzes the API against these declarations.
``state_limits`` writes one server's own bounds (``max_tokens``, token ids) into its ``/openapi.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from fastapi import FastAPI

    from softprompt.serve.engine import Engine


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Reply):
    message: str = Field(description="What was wrong, naming the field or limit and what is accepted.")
    type: str = Field(description="`invalid_request_error`, `rate_limit_error`, `timeout_error`, ...")
    param: str | None = Field(description="The request field at fault, when one is.")
    code: str | None = Field(description="A stable code: `model_not_found`, `queue_full`, `timeout`, ...")


class ErrorBody(_Reply):
    """Every error: ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape)."""

    error: ErrorDetail


ERRORS: dict[int, str] = {
    400: "Bad input: not a JSON object, an empty prompt or input, input or `max_tokens` over the server's limit "
    "(`context_length_exceeded`, `invalid_value`), no chat template, a model that cannot generate.",
    401: "No or wrong API key (servers started with `--api-key`).",
    404: "No prompt of that name is served (`model_not_found`).",
    409: "`base` (the plain backbone) cannot be deleted (`base_not_removable`).",
    413: "Request body over the size limit (1 MiB; `body_too_large`).",
    422: "A field of the wrong type or out of its bounds (`invalid_type`, naming the field).",
    429: "The request queue is full (`queue_full`); retry after `Retry-After` seconds.",
    503: "The server stopped before the request finished (`cancelled`).",
    504: "The request ran past the server's time limit (`timeout`).",
}


SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event of a `stream: true` response.",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A JSON chunk (`text_completion` / `chat.completion.chunk`, or an `error` object "
            "when a row fails mid-stream), then `[DONE]` last.",
        },
        "event": {"const": "message"},
    },
}


def documented(*codes: int, ok: int = 200, body: type[BaseModel] | None = None, stream: bool = False) -> dict:
    """FastAPI ``responses=`` for a route: ``ok`` with ``body``, and each error status of ``codes``."""
    out: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody, "description": ERRORS[c]} for c in codes}
    if body is not None:
        out[ok] = {"model": body, "description": "Success."}
        if stream:
            out[ok]["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
    return out


class Usage(_Reply):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _Envelope(_Reply):
    id: str
    created: int
    model: str
    usage: Usage


class CompletionChoice(_Reply):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: dict[str, Any] | None


class Completion(_Envelope):
    object: Literal["text_completion"]
    choices: list[CompletionChoice]


class ChatMessage(_Reply):
    role: Literal["assistant"]
    content: str


class ChatChoice(_Reply):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length"] | None
    logprobs: dict[str, Any] | None


class ChatCompletion(_Envelope):
    object: Literal["chat.completion"]
    choices: list[ChatChoice]


class ModelCard(_Reply):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    method: str | None
    virtual_tokens: int
    parent: str
    root: str
    version: int | None = None
    classify: list[str] | None = None


class ModelList(_Reply):
    object: Literal["list"]
    data: list[ModelCard]


class Deleted(_Reply):
    id: str
    object: Literal["model"]
    deleted: bool


class Classified(_Reply):
    index: int
    label: str
    scores: dict[str, float]


class Classification(_Reply):
    id: str
    object: Literal["list"]
    model: str
    data: list[Classified]


class Health(_Reply):
    status: Literal["ok"]
    prompts: int
    pid: int
    waiting: int
    prefilling: int
    running: int


def state_limits(app: FastAPI, engine: Engine) -> None:
    """``/openapi.json`` states this server's own bounds: ``max_tokens`` up to ``max_new_tokens``, token ids
    inside the vocabulary (the bodies' classes cannot: they are shared by every server)."""
    from softprompt.core.arch import input_embeddings

    plain = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = plain()  # (FastAPI keeps it as app.openapi_schema)
            vocab = input_embeddings(engine.model.backbone).num_embeddings
            schemas = spec["components"]["schemas"]
            for name in ("CompletionBody", "ChatBody"):
                for field in ("max_tokens", "max_completion_tokens"):
                    if field in schemas[name]["properties"]:
                        schemas[name]["properties"][field]["anyOf"][0]["maximum"] = (
                            engine.config.max_new_tokens
                        )
            for option in schemas["CompletionBody"]["properties"]["prompt"]["anyOf"]:
                items = option.get("items", {})
                ints = items.get("items", items) if items.get("type") == "array" else items
                if ints.get("type") == "integer":
                    ints.update(minimum=0, maximum=vocab - 1)
            return spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
