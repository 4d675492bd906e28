"""An API call made a checked request: token ids in the vocabulary, lengths within the model's context, a prompt
that exists (and, to classify, has a task). Whatever is refused is refused here, before anything is queued."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import torch
from annotated_types import Interval

from softprompt.core.arch import input_embeddings
from softprompt.core.decoding import DEFAULTS, make_sampler
from softprompt.errors import ConfigError, InputTooLong, SoftPromptError, UnsupportedModel, check_value
from softprompt.serve.families import refusal
from softprompt.serve.limits import EngineConfig
from softprompt.serve.requests import Classification, Completion
from softprompt.serve.sampling import Detokenizer
from softprompt.serve.store import Entry, PromptStore
from softprompt.tasks.base import tokenizer_of

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel


def check_token_ids(model: PromptedModel, ids: list[int]) -> None:
    """Refuse an empty prompt or a token id outside ``model``'s vocabulary (ConfigError naming it)."""
    if not ids:
        raise ConfigError("prompt is empty; give at least one token of text")
    vocab = input_embeddings(model.backbone).num_embeddings
    bad = next((t for t in ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise ConfigError(f"prompt holds token id {bad}; accepted ids: 0..{vocab - 1}")


class Intake:
    """Builds checked ``Completion`` / ``Classification`` requests for ``store.model`` under ``config``."""

    def __init__(self, store: PromptStore, config: EngineConfig):
        self.store, self.model, self.config = store, store.model, config
        self.tok = tokenizer_of(self.model)  # (serving tokenizes every request)
        info = self.model.info
        self.refusal = refusal(self.model)  # None: this backbone generates through the server
        cfg = self.model.backbone.config
        self.positions = info.max_positions or getattr(cfg, "max_position_embeddings", None)
        eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
        self.eos = frozenset(e for e in [*eos, getattr(self.tok, "eos_token_id", None)] if e is not None)

    def completion(
        self, ids: list[int], prompt: str | None, *, sink: Callable[[dict], None], **params: Any
    ) -> Completion:
        """A checked completion request for token ``ids`` (holds its prompt version until it ends)."""
        if self.refusal is not None:
            raise UnsupportedModel(self.refusal)
        check_token_ids(self.model, ids)
        max_tokens = params.get("max_tokens", DEFAULTS.max_tokens)
        check_value("max_tokens", max_tokens, Annotated[int, Interval(ge=1, le=self.config.max_new_tokens)])
        entry = self.store.acquire(prompt)
        try:
            self.check_length(len(ids), entry, max_tokens)
        except SoftPromptError:
            self.store.release(entry)
            raise
        seed = params.get("seed")
        req = Completion(
            entry=entry, sink=sink, ids=list(ids), eos=self.eos, timeout=self.config.request_timeout
        )
        for k, v in params.items():
            setattr(req, k, v)
        req.detok = Detokenizer(self.tok, req.stop)
        req.sampler = make_sampler(True, req.temperature, req.top_p)  # softprompt.generate's warpers
        if req.sampler is not None:  # the row's own generator, on the logits' device (as the library draws)
            device = input_embeddings(self.model.backbone).weight.device
            req.generator = torch.Generator(device).manual_seed(
                seed if seed is not None else secrets.randbits(63)
            )
        return req

    def check_length(self, n: int, entry: Entry | None, max_tokens: int) -> None:
        limit = self.config.max_input_tokens
        if limit is not None and n > limit:
            raise InputTooLong(f"prompt has {n} tokens; the limit is max_input_tokens={limit}")
        virtual = 0 if entry is None else entry.virtual_tokens
        if self.positions is not None and self.model.info.kind == "seq2seq":  # each side its own positions
            if n + virtual > self.positions:
                raise InputTooLong(
                    f"prompt ({n} tokens) + {virtual} virtual tokens = {n + virtual} > the encoder's context "
                    f"of {self.positions} positions"
                )
            if max_tokens + 1 > self.positions:
                raise InputTooLong(
                    f"max_tokens ({max_tokens}) + 1 start token > the decoder's context of {self.positions} "
                    "positions"
                )
        elif self.positions is not None and n + virtual + max_tokens > self.positions:
            raise InputTooLong(
                f"prompt ({n} tokens) + {virtual} virtual tokens + max_tokens ({max_tokens}) = "
                f"{n + virtual + max_tokens} > the model's context of {self.positions} positions"
            )

    def classification(
        self, texts: list[str], prompt: str, *, sink: Callable[[dict], None]
    ) -> Classification:
        """A checked classification request (label scores of ``prompt``'s task for each text)."""
        entry = self.store.acquire(prompt)
        if entry is None or entry.task is None:
            self.store.release(entry)
            raise ConfigError(
                f"model={prompt!r} has no classification task (only prompts saved by `softprompt train` "
                "for classification/probing do)"
            )
        return Classification(entry=entry, sink=sink, texts=list(texts), timeout=self.config.request_timeout)
