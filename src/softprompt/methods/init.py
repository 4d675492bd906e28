"""Initializers shared by the methods that start from token embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from softprompt.core.prompt import InitContext
from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def special_ids(tokenizer: PreTrainedTokenizerBase | None) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", []) or [])


def vocab_sample(ctx: InitContext, n: int, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` ids drawn from the ``top_k`` most frequent non-special ids.

    Frequency proxy: BPE / SentencePiece vocabularies assign lower ids to earlier (more frequent) merges, so
    the first ``top_k`` ids are taken as the most frequent (Lester et al. sample from the 5,000 most common).
    """
    skip = special_ids(ctx.tokenizer)
    pool = torch.tensor(
        [i for i in range(min(top_k + len(skip), ctx.info.vocab_size)) if i not in skip][:top_k]
    )
    return pool[torch.randint(len(pool), (n,), generator=generator)]


def text_ids(ctx: InitContext, text: str) -> list[int]:
    if ctx.tokenizer is None:
        raise ConfigError(f"init text {text!r} needs a tokenizer; pass tokenizer= when adding the prompt")
    ids = ctx.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"init text {text!r} tokenizes to no tokens")
    return ids


def fill_to(ids: list[int], n: int) -> list[int]:
    """Repeat ``ids`` cyclically (or cut them) to length ``n``."""
    return [ids[i % len(ids)] for i in range(n)]


def embed(ctx: InitContext, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """(n, H) float32 starting values for token ``ids``: what the embedding module outputs for them (on the
    CPU, where prompts are built), so a scaled embedding (Gemma, BART) starts at the size of real tokens."""
    ids = [int(i) for i in torch.as_tensor(ids, dtype=torch.long).flatten().tolist()]
    if ctx.embed_tokens is not None:
        return ctx.embed_tokens(ids).cpu()
    return ctx.embeddings[torch.as_tensor(ids, dtype=torch.long)].detach().clone().float()  # raw rows
