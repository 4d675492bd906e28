"""Request bodies of the HTTP API, typed: FastAPI validates them and ``/openapi.json`` describes every field.

OpenAI's field names; unknown fields are ignored, as OpenAI's server does. Sampling defaults come from
``core.decoding.DEFAULTS`` (the library's and the engine's too).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from softprompt.core.bank import NAME
from softprompt.core.decoding import DEFAULTS, TopP

T = TypeVar("T")
NonEmpty = Annotated[list[T], Field(min_length=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = Field(default=False, description="Send a last chunk with the token usage.")


Model = Annotated[str, Field(description="A served prompt's name; `base` is the backbone without a prompt.")]


class _Sampling(_Body):
    model: Model
    max_tokens: int | None = Field(
        default=None, ge=1, description=f"New tokens at most (default {DEFAULTS.max_tokens})."
    )
    temperature: float = Field(
        default=DEFAULTS.temperature, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy."
    )
    top_p: TopP = Field(default=DEFAULTS.top_p, description="Nucleus sampling mass.")
    stop: str | list[str] | None = Field(
        default=None, description="Strings that end the text (cut before the first one)."
    )
    seed: int | None = Field(
        default=DEFAULTS.seed,
        ge=-(2**63),
        le=2**64 - 1,
        description="Seed of the request's own sampler (what torch.Generator.manual_seed takes).",
    )
    n: int = Field(default=1, ge=1, le=16, description="Completions per prompt.")
    stream: bool = Field(default=False, description="Send server-sent events as tokens arrive.")
    stream_options: StreamOptions | None = None

    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def new_tokens(self) -> int:
        """``max_tokens`` (chat: ``max_completion_tokens`` first), or the default."""
        return getattr(self, "max_completion_tokens", None) or self.max_tokens or DEFAULTS.max_tokens


class CompletionBody(_Sampling):
    """``POST /v1/completions``."""

    prompt: str | NonEmpty[str] | NonEmpty[int] | NonEmpty[NonEmpty[int]] = Field(
        description="A text, texts, token ids, or lists of token ids (lists not empty)."
    )
    logprobs: int | None = Field(default=None, ge=0, le=5, description="Top log-probabilities per token.")
    echo: bool = False


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class ChatBody(_Sampling):
    """``POST /v1/chat/completions`` (tokenizers with a chat template)."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Overrides `max_tokens`.")
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=5)


class ClassifyBody(_Body):
    """``POST /v1/classify``: label scores of a trained classification prompt."""

    model: Model
    input: str | NonEmpty[str] = Field(description="A text or a non-empty list of texts.")
    prompt: (
        str | Annotated[list[str], Field(min_length=1, json_schema_extra={"uniqueItems": True})] | None
    ) = Field(
        default=None,
        description="An ensemble: the served prompts to score under and combine (default: model alone).",
    )
    combine: Literal["mean", "vote"] = Field(
        default="mean", description="How an ensemble's members are combined."
    )


class PromptBody(_Body):
    """``POST /v1/prompts``: serve the prompt folder ``path`` (inside the prompts root) as ``name``."""

    name: str = Field(
        pattern=NAME.pattern,
        description="The name requests will use as `model`: 1-128 ASCII letters, digits, '_' or '-' (not `base`).",
    )
    path: str = Field(description="A prompt folder, relative to the server's prompts root.")
