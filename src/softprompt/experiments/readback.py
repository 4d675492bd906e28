"""Prompts read back as words (Lester et al. 2021, section 7): each virtual token's nearest vocabulary tokens.

What is compared with what, and what is not interpretable:

- Input embeddings (prompt tuning, P-tuning, multitask prompt tuning): each virtual token against every row of
  the input embedding matrix, by cosine similarity (a scaled embedding module scales all rows alike).
- Key/value prefixes (prefix tuning, P-tuning v2): the first attention layer's prefix keys against the keys that
  layer gives each vocabulary token alone at position 0 (one forward over the vocabulary that stops after the
  first layer). Position 0 keys carry no rotary rotation, so the first prefix position compares like for like;
  later positions are compared the same way, but their words are only suggestive. Deeper layers' keys mix
  context and are not compared to words.
- Adaption prompts: vectors in a top layer's hidden space, not the vocabulary's: not read back.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from softprompt.core import kv
from softprompt.core.arch import input_embeddings

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel


class _FirstLayer(dict):
    """A capture dict that stops the forward once the first attention slot has stored its keys."""

    class Done(Exception):
        pass

    def __setitem__(self, slot, value):
        super().__setitem__(slot, value)
        if slot == 0:
            raise _FirstLayer.Done


@torch.no_grad()
def vocabulary_keys(model: PromptedModel, chunk: int = 2048) -> torch.Tensor:
    """(V, H_kv * D): the first attention layer's key of each vocabulary token alone at position 0."""
    model.enable_prefixes("reading the first layer's keys")
    dev = input_embeddings(model.backbone).weight.device
    out = []
    for start in range(0, model.info.vocab_size, chunk):
        ids = torch.arange(start, min(start + chunk, model.info.vocab_size), device=dev)[:, None]  # (n, 1)
        capture = _FirstLayer()
        state = kv.KVPrefix(capture=capture)
        pos = torch.full_like(ids, model.info.position_base)
        extra = {"position_ids": pos} if model.info.accepts_position_ids else {}
        with contextlib.suppress(_FirstLayer.Done):  # the first layer's keys are all it needs
            model.backbone(input_ids=ids, use_cache=False, **extra, **{kv.KWARG: state})
        keys = capture[0][0]  # (n, H_kv, 1, D)
        out.append(keys[:, :, 0].reshape(keys.shape[0], -1).float().cpu())
    return torch.cat(out)


def _nearest(vectors: torch.Tensor, table: torch.Tensor, tokenizer, k: int) -> list[dict]:
    """Per row of ``vectors`` (N, E): its norm and the k rows of ``table`` (V, E) of highest cosine."""
    sims = F.normalize(vectors.float(), dim=-1) @ F.normalize(table.float(), dim=-1).T  # (N, V)
    scores, ids = sims.topk(min(k, table.shape[0]), dim=-1)
    word = (lambda i: tokenizer.decode([i])) if tokenizer is not None else str
    return [
        {
            "position": p,
            "norm": float(vectors[p].norm()),
            "nearest": [{"id": i, "token": word(i), "cosine": round(c, 4)} for i, c in zip(row_i, row_c)],
        }
        for p, (row_i, row_c) in enumerate(zip(ids.tolist(), scores.tolist()))
    ]


@torch.no_grad()
def read_back(model: PromptedModel, name: str, k: int = 5) -> dict:
    """The k nearest vocabulary tokens of each virtual token of prompt ``name`` (see the module docstring).

    Returns:
        ``{"prompt", "method", "embeds": [...] | None, "layer0_keys": [...] | None, "not_read": [...]}``; each
        list holds per position ``{"position", "norm", "nearest": [{"id", "token", "cosine"}]}``.
    """
    module = model.bank.get(name)
    was = module.training
    module.eval()
    try:
        c = module.contribute()
    finally:
        module.train(was)
    out: dict[str, Any] = {
        "prompt": name,
        "method": getattr(module.config, "source_method", "") or module.config.method,
    }
    out |= {"embeds": None, "layer0_keys": None, "not_read": []}
    if c.embeds is not None:
        table = input_embeddings(model.backbone).weight
        out["embeds"] = _nearest(c.embeds.detach().cpu(), table.detach().cpu(), model.tokenizer, k)
    if c.kv is not None:
        keys = c.kv[0, 0].detach().float().cpu()  # (H_kv, P, D): the first slot's prefix keys
        flat = keys.permute(1, 0, 2).reshape(keys.shape[1], -1)  # (P, H_kv * D)
        out["layer0_keys"] = _nearest(flat, vocabulary_keys(model), model.tokenizer, k)
        out["not_read"].append("prefix keys of layers 1.. and all prefix values: contextual, not words")
    if c.adapter is not None:
        out["not_read"].append("adaption prompt: vectors in a top layer's hidden space, not the vocabulary's")
    return out
