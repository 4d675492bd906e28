"""The engine's limits (one dataclass, checked on construction)."""

from __future__ import annotations

from dataclasses import dataclass

from softprompt.errors import check_range


@dataclass(kw_only=True)
class EngineConfig:
    """Limits of one serving engine."""

    max_rows: int = 32
    """Generation rows decoded together at most (running requests); 1..4096."""
    max_tokens_per_step: int = 512
    """Prompt tokens (joining rows x columns) prefilled in one scheduler step at most: a longer prefill is split
    into chunks over several steps while the running rows keep decoding (at least one column per step)."""
    max_queue: int = 256
    """Requests waiting for a slot at most; one more is refused (HTTP 429)."""
    max_new_tokens: int = 512
    """Largest ``max_tokens`` a request may ask for."""
    max_input_tokens: int | None = None
    """Longest input in tokens; None: the backbone's positions minus virtual tokens and ``max_tokens``."""
    request_timeout: float = 60.0
    """Seconds a request may take from submission to its last token (HTTP 504 after)."""
    classify_rows: int = 64
    """Classification examples scored in one step at most (one forward, whatever their prompts); a request
    with more runs alone in its step."""

    def __post_init__(self):
        check_range("max_rows", self.max_rows, low=1, high=4096)
        check_range("max_tokens_per_step", self.max_tokens_per_step, low=1)
        check_range("max_queue", self.max_queue, low=1)
        check_range("max_new_tokens", self.max_new_tokens, low=1)
        if self.max_input_tokens is not None:
            check_range("max_input_tokens", self.max_input_tokens, low=1)
        check_range("request_timeout", self.request_timeout, low=0, low_open=True)
        check_range("classify_rows", self.classify_rows, low=1)
