"""OpenAI-shaped errors and response bodies."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from softprompt.errors import InputTooLong, SoftPromptError, UnsupportedModel
from softprompt.serve.refusals import BaseNotRemovable, Cancelled, QueueFull, RequestTimeout, UnknownPrompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class ApiError(Exception):
    """An HTTP error in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = {"Retry-After": "1"} if status == 429 else None

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def api_error(e: Exception, param: str | None = None) -> ApiError:
    """Our exception (or any other) as the HTTP error it means."""
    if isinstance(e, ApiError):
        return e
    msg = " ".join(str(e).split())
    if isinstance(e, UnknownPrompt):
        return ApiError(404, msg, param="model", code="model_not_found")
    if isinstance(e, BaseNotRemovable):
        return ApiError(409, msg, param="name", code="base_not_removable")
    if isinstance(e, QueueFull):
        return ApiError(429, msg, type="rate_limit_error", code="queue_full")
    if isinstance(e, RequestTimeout):
        return ApiError(504, msg, type="timeout_error", code="timeout")
    if isinstance(e, Cancelled):
        return ApiError(503, msg, type="server_error", code="cancelled")
    if isinstance(e, InputTooLong):
        return ApiError(400, msg, param=param, code="context_length_exceeded")
    if isinstance(e, UnsupportedModel):
        return ApiError(400, msg, param="model", code="unsupported")
    if isinstance(e, SoftPromptError):
        named = re.match(r"^(\w+)=", msg)
        return ApiError(400, msg, param=named.group(1) if named else param, code="invalid_value")
    return ApiError(500, f"internal error: {type(e).__name__}: {msg}", type="server_error", code="internal")


def http_error(status: int, detail: str) -> ApiError:
    """An error FastAPI or Starlette raise themselves (a body that is not UTF-8, an unknown route, a wrong
    method) in the API's shape."""
    if status == 400:
        return ApiError(400, f"request body is not valid JSON: {detail}", code="invalid_json")
    codes = {404: "not_found", 405: "method_not_allowed"}
    return ApiError(status, detail, code=codes.get(status, "invalid_request"))


def invalid_body(errors: Sequence[Any]) -> ApiError:
    """FastAPI's validation errors of a body as ours: 400 when it is not a JSON object, else 422 naming the field."""
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    loc = loc[1:] if loc and loc[0] in ("body", "path", "query") else loc
    if err["type"] == "json_invalid":
        why = err.get("ctx", {}).get("error", err["msg"])
        return ApiError(400, f"request body is not valid JSON: {why}", code="invalid_json")
    if not loc and err["type"] in ("missing", "model_type", "model_attributes_type", "dict_type"):
        return ApiError(400, "request body must be a JSON object", code="invalid_json")
    param = ".".join(loc) or None
    msg = f"{param}: {err['msg']} (got {err.get('input')!r})"[:500]
    return ApiError(422, msg, param=param, code="invalid_type")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_logprobs(tok: PreTrainedTokenizerBase, events: list[dict], offset: int = 0) -> dict:
    """OpenAI's legacy ``logprobs`` object for one choice."""
    out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for e in events:
        out["tokens"].append(tok.decode([e["token"]]))
        out["token_logprobs"].append(e["logprob"])
        out["top_logprobs"].append({tok.decode([t]): lp for t, lp in e["top"]})
        out["text_offset"].append(offset)
        offset += len(e["text"])
    return out


def chat_logprobs(tok: PreTrainedTokenizerBase, events: list[dict]) -> dict:
    def item(t: int, lp: float) -> dict:
        text = str(tok.decode([t]))  # one id list decodes to a str (transformers annotates str | list[str])
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {
        "content": [
            {**item(e["token"], e["logprob"]), "top_logprobs": [item(t, lp) for t, lp in e["top"]]}
            for e in events
        ]
    }


def envelope(kind: str, rid: str, model: str, choices: list, **extra: Any) -> dict:
    return {
        "id": rid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }
