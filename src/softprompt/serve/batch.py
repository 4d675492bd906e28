"""A running batch of generation rows on one KV cache; rows join and leave between decode steps.

Rows are left-padded in the cache (content last), each with its own positions and attention mask, exactly as
``core.generation`` lays out a batch; prefixes are applied at attention time (``core.kv``), so the cache only
holds real tokens. Joining rows are prefilled on their own, then their cache is merged into the running one by
left-padding the shorter along the sequence; leaving rows are dropped and all-padding columns trimmed. A row
therefore attends to exactly what it would attend to alone, whichever rows share its batch.

A prefill may be split (``Filling``): the joining rows' expanded sequence (virtual tokens inserted, positions and
mask as for a whole prefill) is fed a chunk of columns at a time on its own cache, each chunk attending to the
cached columns before it and to the rows' prefixes, so the cache it ends with is the whole prefill's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from softprompt.core import compat, kv, packed
from softprompt.core.arch import input_embeddings
from softprompt.tasks.base import pad_rows

if TYPE_CHECKING:
    from transformers import Cache

    from softprompt.core.model import PromptedModel
    from softprompt.serve.families import Filler


def _pad_left(x: torch.Tensor, dim: int, width: int) -> torch.Tensor:
    extra = width - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - dim - 1) + [extra, 0]
    return F.pad(x, pad)


class RowBatch:
    """The cache, masks and positions of the rows being decoded; ``keys[i]`` names row i's prefix (or None)."""

    def __init__(self, model: PromptedModel) -> None:
        self.model = model
        self.keys: list[str | None] = []
        self.overrides: dict = {}  # bank key -> Contribution (key/value prefix) for every prompted row
        self.cache: Cache | None = None
        self.attn: torch.Tensor | None = None  # (B, T) 1 for real cached tokens
        self.pos: torch.Tensor | None = None  # (B, 1) position of each row's last cached token
        self._prefix: kv.KVPrefix | None = None
        self._last = {"logits_to_keep": 1} if compat.takes_logits_to_keep(model.backbone) else {}

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def device(self) -> torch.device:
        return input_embeddings(self.model.backbone).weight.device

    def prefill(self, ids: list[list[int]], keys: list[str | None], overrides: dict) -> torch.Tensor:
        """Add rows with token ``ids`` and prefix ``keys`` in one forward; returns their next-token logits (n, V)."""
        filling = self.filling(ids, keys, overrides)
        logits = filling.step(filling.width)
        assert logits is not None  # (one step over every column is the last)
        self.join(filling)
        return logits

    def filling(self, ids: list[list[int]], keys: list[str | None], overrides: dict) -> Filling:
        """A chunked prefill of rows with token ``ids`` and prompts ``keys``, to :meth:`join` once finished."""
        return Filling(self.model, ids, keys, overrides)

    def join(self, filling: Filler) -> None:
        """Merge the rows of a finished ``filling`` (their cache) after the current rows."""
        assert isinstance(filling, Filling) and filling.finished, "join a Filling once its last chunk ran"
        exp = filling.exp
        self._merge(filling.cache, exp.mask, exp.position_ids[:, -1:], filling.keys, filling.overrides)

    def _merge(self, cache, attn, pos, keys, overrides) -> None:
        self.overrides.update({k: overrides[k] for k in keys if k in overrides})
        if not self.keys:
            self.cache, self.attn, self.pos, self.keys = cache, attn, pos, list(keys)
        else:
            assert (
                self.cache is not None and self.attn is not None and self.pos is not None
            )  # (rows are running)
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

    def prefix(self) -> kv.KVPrefix | None:
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
        assert self.cache is not None and self.attn is not None and self.pos is not None  # (rows are running)
        self.attn = torch.cat([self.attn, self.attn.new_ones(self.attn.shape[0], 1)], 1)
        self.pos = self.pos + 1
        kw = {
            "inputs_embeds": input_embeddings(self.model.backbone)(tokens.to(self.device)[:, None]),
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

    @property
    def packs(self) -> bool:
        """Whether a decode step and a prefill chunk can share one forward (:meth:`step`): a causal backbone
        without a sliding window whose attention softprompt wraps, taking position ids and ``logits_to_keep``."""
        info = self.model.info
        return (
            info.kind == "causal"
            and not info.sliding_window
            and info.accepts_position_ids
            and self.model.takes_prefixes
            and bool(self._last)
        )

    def step(
        self, tokens: torch.Tensor | None, filling: Filling, columns: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Decode the running rows (``tokens`` (B,): each row's last chosen token; None when none runs) and feed
        ``filling``'s next ``columns`` columns in ONE forward (``core.packed``); returns the running rows' logits
        (B, V) and, after the filling's last chunk, the joining rows' next-token logits (n, V)."""
        self.model.enable_prefixes("one forward for decode rows and a prefill chunk")
        parts, embeds, pos = [], [], []
        if tokens is not None:
            assert (
                self.cache is not None and self.attn is not None and self.pos is not None
            )  # (rows are running)
            self.attn = torch.cat([self.attn, self.attn.new_ones(self.attn.shape[0], 1)], 1)
            self.pos = self.pos + 1
            embeds.append(input_embeddings(self.model.backbone)(tokens.to(self.device)))  # (B, H)
            pos.append(self.pos.reshape(-1))
            mask = self.attn.bool()[:, None, None, :]  # (B, 1, 1, T + 1)
            parts.append(packed.Part(len(self), 1, mask, compat.cache_tensors(self.cache), self.prefix()))
        fill, fill_embeds, fill_pos = filling.part(columns)
        parts.append(fill)
        embeds.append(fill_embeds)
        pos.append(fill_pos)
        n = len(self) if tokens is not None else 0
        keep = list(range(n))
        if filling.finished:  # each joining row's last column
            keep += [n + r * fill.cols + fill.cols - 1 for r in range(fill.rows)]
        res = self.model.backbone(
            inputs_embeds=torch.cat(embeds)[None],  # (1, Q, H)
            position_ids=torch.cat(pos)[None],  # (1, Q)
            use_cache=False,
            logits_to_keep=torch.tensor(keep, device=self.device) if keep else 1,
            **{kv.KWARG: packed.Packed(parts)},
        )
        logits = res.logits[0].float()  # (len(keep), V)
        if tokens is not None:
            self.cache = compat.cache_from_tensors(parts[0].layers())
        filling.cache = compat.cache_from_tensors(fill.layers())
        return (logits[:n] if n else None), (logits[n:] if filling.finished else None)

    def keep(self, index: list[int]) -> None:
        """Keep only rows ``index`` (in that order); trims cache columns no remaining row uses."""
        if len(index) == len(self.keys):
            return
        if not index:
            RowBatch.__init__(self, self.model)  # empty: every field as new
            return
        assert self.cache is not None and self.attn is not None and self.pos is not None  # (rows are running)
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


class Filling:
    """Rows being prefilled, ``step(columns)`` columns of their expanded sequence at a time, on their own cache."""

    def __init__(self, model: PromptedModel, ids: list[list[int]], keys: list[str | None], overrides: dict):
        self.model, self.keys, self.overrides = model, list(keys), overrides
        device = input_embeddings(model.backbone).weight.device
        pad = model.tokenizer.pad_token_id if model.tokenizer is not None else 0
        x, m = pad_rows(ids, pad or 0, left=True)
        self.exp, batch = model.prepare(x.to(device), m.to(device), keys, left_pad=True, overrides=overrides)
        self.kw = model.backbone_kwargs(self.exp, batch)  # the whole sequence: (n, T, H) embeds, (n, T) mask
        self.kw.update({"logits_to_keep": 1} if compat.takes_logits_to_keep(model.backbone) else {})
        self.cache = compat.new_cache(model.backbone, whole=True)  # columns = tokens in every layer
        self.width = self.exp.mask.shape[1]  # T columns to feed
        self.done = 0  # columns fed so far

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def finished(self) -> bool:
        return self.done == self.width

    def part(self, columns: int) -> tuple[packed.Part, torch.Tensor, torch.Tensor]:
        """The next ``columns`` columns as a part of a packed forward (``RowBatch.step``, which stores the cache
        it ends with): the part, its embeddings (n x cols, H) and position ids (n x cols,), packed row by row."""
        a, b = self.done, min(self.done + max(columns, 1), self.width)
        mask = packed.causal_mask(self.kw["attention_mask"], a, b - a)  # (n, 1, b - a, b)
        past = compat.cache_tensors(self.cache) if a else None
        part = packed.Part(len(self), b - a, mask, past, self.kw.get(kv.KWARG))
        self.done = b
        embeds = self.kw["inputs_embeds"][:, a:b]  # (n, b - a, H)
        return part, embeds.reshape(-1, embeds.shape[-1]), self.kw["position_ids"][:, a:b].reshape(-1)

    def step(self, columns: int) -> torch.Tensor | None:
        """Feed the next ``columns`` columns; the rows' next-token logits (n, V) after the last chunk, else None."""
        a, b = self.done, min(self.done + max(columns, 1), self.width)
        kw = {**self.kw, "inputs_embeds": self.kw["inputs_embeds"][:, a:b]}  # (n, b - a, H)
        kw["attention_mask"] = self.kw["attention_mask"][:, :b]  # cached columns and this chunk
        if "position_ids" in kw:
            kw["position_ids"] = kw["position_ids"][:, a:b]
        res = self.model.backbone(
            **kw, **compat.cache_kwargs(self.model.backbone, self.cache), use_cache=True
        )
        self.cache, self.done = compat.cache_of(res), b
        return res.logits[:, -1].float() if self.finished else None
