"""A running batch of generation rows on one KV cache; rows join and leave between decode steps.

Rows are left-padded in the cache (content last), each with its own positions and attention mask, exactly as
``core.generation`` lays out a batch; prefixes are applied at attention time (``core.kv``), so the cache only
holds real tokens. Joining rows are prefilled on their own, then their cache is merged into the running one by
left-padding the shorter along the sequence; leaving rows are dropped and all-padding columns trimmed. A row
therefore attends to exactly what it would attend to alone, whichever rows share its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softprompt.core import compat, kv
from softprompt.tasks.base import pad_rows


def _pad_left(x: torch.Tensor, dim: int, width: int) -> torch.Tensor:
    extra = width - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - dim - 1) + [extra, 0]
    return F.pad(x, pad)


class RowBatch:
    """The cache, masks and positions of the rows being decoded; ``keys[i]`` names row i's prefix (or None)."""

    def __init__(self, model):
        self.model = model
        self.keys: list[str | None] = []
        self.overrides: dict = {}  # bank key -> Contribution (key/value prefix) for every prompted row
        self.cache = None
        self.attn: torch.Tensor | None = None  # (B, T) 1 for real cached tokens
        self.pos: torch.Tensor | None = None  # (B, 1) position of each row's last cached token
        self._prefix = None
        self._last = {"logits_to_keep": 1} if compat.takes_logits_to_keep(model.backbone) else {}

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def device(self):
        return self.model.backbone.get_input_embeddings().weight.device

    def prefill(self, ids: list[list[int]], keys: list[str | None], overrides: dict) -> torch.Tensor:
        """Add rows with token ``ids`` and prefix ``keys``; returns their next-token logits (n, V)."""
        pad = self.model.tokenizer.pad_token_id if self.model.tokenizer is not None else 0
        x, m = pad_rows(ids, pad or 0, left=True)
        x, m = x.to(self.device), m.to(self.device)
        exp, batch = self.model.prepare(x, m, keys, left_pad=True, overrides=overrides)
        kw = {**self.model.backbone_kwargs(exp, batch), **self._last}
        cache = compat.new_cache(self.model.backbone)
        res = self.model.backbone(**kw, **compat.cache_kwargs(self.model.backbone, cache), use_cache=True)
        self._merge(compat.cache_of(res), exp.mask, exp.position_ids[:, -1:], keys, overrides)
        return res.logits[:, -1].float()

    def _merge(self, cache, attn, pos, keys, overrides) -> None:
        self.overrides.update({k: overrides[k] for k in keys if k is not None})
        if not self.keys:
            self.cache, self.attn, self.pos, self.keys = cache, attn, pos, list(keys)
        else:
            width = max(self.attn.shape[1], attn.shape[1])
            layers = [
                (
                    torch.cat([_pad_left(k0, 2, width), _pad_left(k1, 2, width)]),
                    torch.cat([_pad_left(v0, 2, width), _pad_left(v1, 2, width)]),
                )
                for (k0, v0), (k1, v1) in zip(compat.cache_tensors(self.cache), compat.cache_tensors(cache))
            ]  # (B0 + B1, H_kv, T, D) each
            self.cache = compat.cache_from_tensors(layers)
            self.attn = torch.cat([_pad_left(self.attn, 1, width), _pad_left(attn, 1, width)])
            self.pos = torch.cat([self.pos, pos])
            self.keys += list(keys)
        self._prefix = None

    def prefix(self):
        """The per-row key/value prefix of the current rows (rebuilt when rows change)."""
        if self._prefix is None:
            batch = self.model.bank.batch(self.keys, self.overrides)
            some = batch.kv is not None or batch.adapter is not None
            self._prefix = (
                kv.KVPrefix(batch.kv, batch.kv_mask, adapter=batch.adapter, adapter_mask=batch.adapter_mask)
                if some
                else None
            )
        return self._prefix

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed each row's last chosen token (B,); returns the next-token logits (B, V)."""
        self.attn = torch.cat([self.attn, self.attn.new_ones(self.attn.shape[0], 1)], 1)
        self.pos = self.pos + 1
        kw = {
            "inputs_embeds": self.model.backbone.get_input_embeddings()(tokens.to(self.device)[:, None]),
            "attention_mask": self.attn,
            **self._last,
        }
        if self.model.info.accepts_position_ids:
            kw["position_ids"] = self.pos
        prefix = self.prefix()
        if prefix is not None:
            kw[kv.KWARG] = prefix
        res = self.model.backbone(
            **kw, **compat.cache_kwargs(self.model.backbone, self.cache), use_cache=True
        )
        self.cache = compat.cache_of(res)
        return res.logits[:, -1].float()

    def keep(self, index: list[int]) -> None:
        """Keep only rows ``index`` (in that order); trims cache columns no remaining row uses."""
        if len(index) == len(self.keys):
            return
        if not index:
            self.__init__(self.model)
            return
        idx = torch.tensor(index, device=self.device)
        attn = self.attn[idx]
        first = int(attn.any(0).long().argmax())  # leading columns that are padding in every row
        layers = [(k[idx, :, first:], v[idx, :, first:]) for k, v in compat.cache_tensors(self.cache)]
        self.cache = compat.cache_from_tensors(layers)
        self.attn, self.pos = attn[:, first:], self.pos[idx]
        self.keys = [self.keys[i] for i in index]
        live = {k for k in self.keys if k is not None}
        self.overrides = {k: v for k, v in self.overrides.items() if k in live}
        self._prefix = None
