"""ASGI middleware: the bearer token on /v1 routes (401) and the body size limit (413): by Content-Length, or
by counting a body sent without one before the app reads it. A /v1 body is JSON whatever its Content-Type says
(``curl -d`` sends a form type), as OpenAI's server reads it.

Pure ASGI (not BaseHTTPMiddleware), so streamed responses and client disconnects pass through untouched.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Guard:
    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body: int) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                what = (
                    "wrong API key" if token else "no API key (send the header Authorization: Bearer <key>)"
                )
                return await _reply(send, 401, what, "invalid_api_key", "authentication_error")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            msg = f"request body is {length} bytes; the limit is {self.max_body}"
            return await _reply(send, 413, msg, "body_too_large", "invalid_request_error")
        if not length.isdigit():  # chunked: read it here, refuse it past the limit, replay it to the app
            messages: list[Message] = []
            size = 0
            while True:
                message = await receive()
                messages.append(message)
                size += len(message.get("body", b""))
                if size > self.max_body:
                    msg = f"request body is over {self.max_body} bytes; the limit is {self.max_body}"
                    return await _reply(send, 413, msg, "body_too_large", "invalid_request_error")
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            receive = _replay(messages, receive)
        if scope["method"] == "POST":
            kept = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        return await self.app(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that returns ``messages`` first, then whatever the client sends next."""

    async def again() -> Message:
        return messages.pop(0) if messages else await receive()

    return again


async def _reply(send: Send, status: int, message: str, code: str, kind: str) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
