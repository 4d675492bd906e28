"""The engine's limits (``--max-new-tokens``, ``--max-queue``, ``--timeout``) enforced by the ``--engine vllm``
front, with the errors the default engine gives: ``max_tokens`` over the limit is HTTP 400 ``invalid_value``; a
request arriving while ``max_rows`` run and ``max_queue`` more wait is HTTP 429 ``queue_full``; a request
running past ``request_timeout`` seconds is HTTP 504 ``timeout`` (in a stream: an error event, then ``[DONE]``),
and the front drops its connection to vLLM, which aborts the request.

The front cannot see vLLM's own queue: it counts the requests it has in flight, and those beyond ``max_rows``
(vLLM's ``--max-num-seqs``) are the waiting ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, TypeVar

from annotated_types import Interval

from softprompt.core.decoding import DEFAULTS
from softprompt.errors import check_value
from softprompt.serve import responses as R
from softprompt.serve.limits import EngineConfig
from softprompt.serve.refusals import QueueFull, RequestTimeout

T = TypeVar("T")


class FrontLimits:
    """In-flight requests of the front and the checks of ``config``."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.in_flight = 0

    def check_body(self, body: dict) -> None:
        """``max_tokens`` within [1, max_new_tokens] (absent: the default, 16), as the engine's intake checks it."""
        value = body.get("max_tokens")
        value = DEFAULTS.max_tokens if value is None else value
        hint = Annotated[int, Interval(ge=1, le=self.config.max_new_tokens)]
        try:
            check_value("max_tokens", value, hint)
        except Exception as e:
            raise R.api_error(e, "max_tokens") from None

    def take(self) -> None:
        """Take one in-flight place for a request (``give`` it back when it ends); 429 when ``max_queue``
        requests wait already."""
        waiting = max(self.in_flight - self.config.max_rows, 0)
        if waiting >= self.config.max_queue:
            raise R.api_error(
                QueueFull(f"{waiting} requests wait already (max_queue={self.config.max_queue})")
            )
        self.in_flight += 1

    def give(self) -> None:
        self.in_flight -= 1

    async def within(self, call: Awaitable[T]) -> T:
        """``call`` under the time limit (504 past it; the connection to vLLM is dropped); gives the place back."""
        try:
            return await asyncio.wait_for(call, self.config.request_timeout)
        except TimeoutError:
            raise self.timeout_error() from None
        finally:
            self.give()

    def timeout_error(self) -> R.ApiError:
        return R.api_error(
            RequestTimeout(f"the request took longer than request_timeout={self.config.request_timeout} s")
        )

    async def stream(self, events: AsyncIterator[str]) -> AsyncIterator[str]:
        """``events`` (server-sent events) within the time limit (an error event past it); gives the place back."""
        try:
            async with asyncio.timeout(self.config.request_timeout):
                async for e in events:
                    yield e
        except TimeoutError:
            yield "data: " + json.dumps(self.timeout_error().body()) + "\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.give()
