"""What the engine runs: a completion row or a batch of classification inputs, with the events it emits.

A request reports through ``sink(event)`` (called on the scheduler thread; the HTTP app forwards events to its
event loop). Completion events: ``{"type": "token", "text", "token", "logprob", "top"}``, then
``{"type": "done", "finish_reason", "prompt_tokens", "completion_tokens"}``; classification: ``{"type":
"scores", "scores"}``; any request may instead end with ``{"type": "error", "error": exception}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList

from softprompt.core.decoding import DEFAULTS
from softprompt.serve.sampling import Detokenizer
from softprompt.serve.store import Entry


@dataclass(kw_only=True)
class Request:
    entry: Entry | None
    sink: Callable[[dict], None]
    timeout: float = 60.0
    submitted: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    finished: bool = False

    @property
    def prompt(self) -> str:
        return "base" if self.entry is None else self.entry.name

    def expired(self, now: float) -> bool:
        return now - self.submitted > self.timeout

    def cancel(self) -> None:
        """Free the slot at the next step (the client went away); no more events are sent."""
        self.cancelled = True


@dataclass(kw_only=True)
class Completion(Request):
    ids: list[int]
    max_tokens: int = DEFAULTS.max_tokens
    temperature: float = DEFAULTS.temperature
    top_p: float = DEFAULTS.top_p
    stop: list[str] = field(default_factory=lambda: list(DEFAULTS.stop))
    seed: int | None = DEFAULTS.seed
    logprobs: int | None = None
    eos: frozenset[int] = frozenset()
    tokens: list[int] = field(default_factory=list)
    detok: Detokenizer | None = None
    sampler: LogitsProcessorList | None = (
        None  # transformers' warpers, as softprompt.generate uses (None: greedy)
    )
    generator: torch.Generator | None = None
    first_token: float | None = None


@dataclass(kw_only=True)
class Classification(Request):
    entry: Entry  # (a classification always has a prompt with a task: intake refuses the others)
    texts: list[str]
