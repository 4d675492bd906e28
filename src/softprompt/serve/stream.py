"""Completion responses from engine events: one JSON body, or server-sent events ending with ``data: [DONE]``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from softprompt.serve import responses as R

if TYPE_CHECKING:
    from fastapi import Request
    from transformers import PreTrainedTokenizerBase

    from softprompt.serve.app import Rows


def _choice(chat: bool, index: int, text: str, reason, logprobs) -> dict:
    if chat:
        return {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": reason,
            "logprobs": logprobs,
        }
    return {"index": index, "text": text, "finish_reason": reason, "logprobs": logprobs}


async def collect(
    tok: PreTrainedTokenizerBase, rows: Rows, request: Request, rid: str, model: str, chat: bool
) -> dict:
    """The whole response once every row ended (an error of any row fails the request)."""
    n = len(rows.reqs)
    tokens: list[list[dict]] = [[] for _ in range(n)]
    done: list[dict | None] = [None] * n
    async for i, ev in rows.events(request):
        if ev["type"] == "error":
            rows.cancel()
            raise R.api_error(ev["error"])
        if ev["type"] == "token":
            tokens[i].append(ev)
        else:
            done[i] = ev
    if any(d is None for d in done):  # the client went away
        raise R.ApiError(499, "client disconnected", code="cancelled")
    ended = [d for d in done if d is not None]  # every row's end event
    choices = []
    for i in range(n):
        lp = None
        if rows.reqs[i].logprobs is not None:
            lp = R.chat_logprobs(tok, tokens[i]) if chat else R.completion_logprobs(tok, tokens[i])
        choices.append(_choice(chat, i, "".join(e["text"] for e in tokens[i]), ended[i]["finish_reason"], lp))
    use = R.usage(sum(len(r.ids) for r in rows.reqs), sum(d["completion_tokens"] for d in ended))
    return R.envelope("chat.completion" if chat else "text_completion", rid, model, choices, usage=use)


async def sse(
    tok: PreTrainedTokenizerBase,
    rows: Rows,
    request: Request,
    rid: str,
    model: str,
    chat: bool,
    include_usage: bool,
) -> AsyncIterator[str]:
    """Server-sent events: one chunk per token event (text deltas), then finish reasons, then ``[DONE]``."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    completion = 0

    def chunk(choices, **extra):
        return "data: " + json.dumps(R.envelope(kind, rid, model, choices, **extra)) + "\n\n"

    if chat:
        yield chunk(
            [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                for i in range(len(rows.reqs))
            ]
        )
    async for i, ev in rows.events(request):
        if ev["type"] == "error":
            rows.cancel()
            yield "data: " + json.dumps(R.api_error(ev["error"]).body()) + "\n\n"
            break
        if ev["type"] == "token":
            lp = None
            if rows.reqs[i].logprobs is not None:
                lp = R.chat_logprobs(tok, [ev]) if chat else R.completion_logprobs(tok, [ev])
            if chat:
                yield chunk(
                    [{"index": i, "delta": {"content": ev["text"]}, "finish_reason": None, "logprobs": lp}]
                )
            else:
                yield chunk([{"index": i, "text": ev["text"], "finish_reason": None, "logprobs": lp}])
        else:
            completion += ev["completion_tokens"]
            delta: dict[str, object] = {"delta": {}} if chat else {"text": ""}
            yield chunk([{"index": i, **delta, "finish_reason": ev["finish_reason"], "logprobs": None}])
    if include_usage:
        yield chunk([], usage=R.usage(sum(len(r.ids) for r in rows.reqs), completion))
    yield "data: [DONE]\n\n"
