"""The engine's limits (one dataclass; the bounds are declared on the fields, checked on construction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from softprompt.errors import check_fields

Positive = Annotated[int, Field(ge=1)]


@dataclass(kw_only=True)
class EngineConfig:
    """Limits of one serving engine."""

    max_rows: Annotated[int, Field(ge=1, le=4096)] = 32
    """Generation rows decoded together at most (running requests); 1..4096."""
    max_tokens_per_step: Positive = 512
    """Prompt tokens (joining rows x columns) prefilled in one scheduler step at most: a longer prefill is split
    into chunks over several steps while the running rows keep decoding (at least one column per step)."""
    max_queue: Positive = 256
    """Requests waiting for a slot at most; one more is refused (HTTP 429)."""
    max_new_tokens: Positive = 512
    """Largest ``max_tokens`` a request may ask for."""
    max_input_tokens: Positive | None = None
    """Longest input in tokens; None: the backbone's positions minus virtual tokens and ``max_tokens``."""
    request_timeout: Annotated[float, Field(gt=0)] = 60.0
    """Seconds a request may take from submission to its last token (HTTP 504 after)."""
    classify_rows: Positive = 64
    """Classification examples scored in one step at most (one forward, whatever their prompts); a request
    with more runs alone in its step."""

    def __post_init__(self):
        check_fields(self)
