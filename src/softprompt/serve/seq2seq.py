"""A running batch of encoder-decoder rows (T5, BART): encoder once per request, continuous batching over decoder
steps.

A joining request runs the encoder once, with its encoder prefix or virtual input tokens, exactly as
``core.generation`` does (right-padded, so learned encoder positions start at 0), then one decoder step on the
start token; its encoder states, cross-attention keys/values and decoder cache are merged into the running
batch. Encoder columns are right-padded (masked), decoder columns left-padded like ``batch.RowBatch`` with each
row's own decoder mask and positions (``compat.decoder_positions`` for learned position tables; relative ones
only see distances). Prefixes (decoder and cross) are applied at attention time, so a row attends to exactly
what it would alone, whichever rows share its step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from softprompt.core import compat, kv
from softprompt.core.arch import input_embeddings
from softprompt.tasks.base import pad_rows

if TYPE_CHECKING:
    from transformers import Cache

    from softprompt.core.model import PromptedModel
    from softprompt.serve.families import Filler


def _pad(x: torch.Tensor, dim: int, width: int, *, left: bool) -> torch.Tensor:
    extra = width - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - dim - 1) + ([extra, 0] if left else [0, extra])
    return F.pad(x, pad)


def _cat(a: torch.Tensor, b: torch.Tensor, dim: int, *, left: bool) -> torch.Tensor:
    """Rows of ``a`` then ``b`` (dim 0), the narrower padded along ``dim`` on the ``left`` or right."""
    width = max(a.shape[dim], b.shape[dim])
    return torch.cat([_pad(a, dim, width, left=left), _pad(b, dim, width, left=left)])


class Seq2SeqBatch:
    """Encoder states, caches, masks and decoder positions of the rows being decoded (``keys`` as in RowBatch)."""

    def __init__(self, model: PromptedModel) -> None:
        self.model = model
        self.keys: list[str | None] = []
        self.overrides: dict = {}
        self.enc: torch.Tensor | None = None  # (B, S, H) encoder states, right-padded
        self.enc_mask: torch.Tensor | None = (
            None  # (B, S) 1 for real encoder columns (virtual tokens included)
        )
        # decoder self-attention (B, H_kv, T, D) left-padded, cross-attention (B, H_kv, S, D)
        self.cache: Cache | None = None  # an EncoderDecoderCache
        self.dec_mask: torch.Tensor | None = None  # (B, T) 1 for real decoder tokens
        self.pos: torch.Tensor | None = None  # (B, 1) decoder position of each row's last token
        self._prefix: kv.KVPrefix | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def device(self) -> torch.device:
        return input_embeddings(self.model.backbone).weight.device

    def prefill(self, ids: list[list[int]], keys: list[str | None], overrides: dict) -> torch.Tensor:
        """Encode rows with token ``ids`` and prompts ``keys``, run their first decoder step; logits (n, V)."""
        pad = self.model.tokenizer.pad_token_id if self.model.tokenizer is not None else 0
        x, m = pad_rows(ids, pad or 0)
        exp, batch = self.model.prepare(x.to(self.device), m.to(self.device), keys, overrides=overrides)
        kw = self.model.backbone_kwargs(exp, batch)
        enc = self.model.backbone.get_encoder()(**kw).last_hidden_state  # (n, S, H)
        start = self.model.backbone.config.decoder_start_token_id
        first = torch.full((len(ids), 1), start, dtype=torch.long, device=self.device)
        res = self.model.backbone(
            encoder_outputs=(enc,),
            attention_mask=exp.mask,
            decoder_input_ids=first,
            **compat.cache_kwargs(self.model.backbone, compat.new_cache(self.model.backbone, seq2seq=True)),
            use_cache=True,
            **{k: v for k, v in kw.items() if k == kv.KWARG},  # decoder and cross prefixes
        )
        self._merge(enc, exp.mask, compat.cache_of(res), keys, overrides)
        return res.logits[:, -1].float()

    def filling(self, ids: list[list[int]], keys: list[str | None], overrides: dict) -> WholeFill:
        """The joining rows' prefill as one step (the encoder runs once per request: no chunks on this side)."""
        return WholeFill(self, ids, keys, overrides)

    def join(self, filling: Filler) -> None:
        """Nothing to do: a finished :class:`WholeFill` merged its rows when it ran."""
        assert isinstance(filling, WholeFill) and filling.finished, "join a WholeFill once it ran"

    def _merge(
        self, enc: torch.Tensor, enc_mask: torch.Tensor, cache: Cache, keys: list[str | None], overrides: dict
    ) -> None:
        self.overrides.update({k: overrides[k] for k in keys if k in overrides})
        dec_mask = enc_mask.new_ones(enc.shape[0], 1)
        pos = torch.zeros_like(dec_mask)
        if not self.keys:
            self.enc, self.enc_mask, self.cache = enc, enc_mask, cache
            self.dec_mask, self.pos, self.keys = dec_mask, pos, list(keys)
        else:
            assert self.enc is not None and self.enc_mask is not None  # (rows are running)
            assert self.dec_mask is not None and self.pos is not None and self.cache is not None
            self.enc = _cat(self.enc, enc, 1, left=False)
            self.enc_mask = _cat(self.enc_mask, enc_mask, 1, left=False)
            (own0, cross0), (own1, cross1) = map(compat.seq2seq_cache_tensors, (self.cache, cache))
            own = [
                (_cat(k0, k1, 2, left=True), _cat(v0, v1, 2, left=True))
                for (k0, v0), (k1, v1) in zip(own0, own1)
            ]
            cross = [
                (_cat(k0, k1, 2, left=False), _cat(v0, v1, 2, left=False))
                for (k0, v0), (k1, v1) in zip(cross0, cross1)
            ]
            self.cache = compat.seq2seq_cache_from_tensors(own, cross)
            self.dec_mask = _cat(self.dec_mask, dec_mask, 1, left=True)
            self.pos = torch.cat([self.pos, pos])
            self.keys += list(keys)
        self._prefix = None

    def prefix(self) -> kv.KVPrefix | None:
        """The per-row key/value prefix of the current rows (rebuilt when rows change)."""
        if self._prefix is None:
            batch = self.model.bank.batch(self.keys, self.overrides)
            self._prefix = None if batch.kv is None else kv.KVPrefix(kv=batch.kv, mask=batch.kv_mask)
        return self._prefix

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed each row's last chosen token (B,); returns the next-token logits (B, V)."""
        assert self.dec_mask is not None and self.pos is not None  # (rows are running)
        self.dec_mask = torch.cat([self.dec_mask, self.dec_mask.new_ones(self.dec_mask.shape[0], 1)], 1)
        self.pos = self.pos + 1
        prefix = self.prefix()
        extra = {} if prefix is None else {kv.KWARG: prefix}
        with compat.decoder_positions(self.model.backbone, self.pos):
            res = self.model.backbone(
                encoder_outputs=(self.enc,),
                attention_mask=self.enc_mask,
                decoder_input_ids=tokens.to(self.device)[:, None],
                decoder_attention_mask=self.dec_mask,
                **compat.cache_kwargs(self.model.backbone, self.cache),
                use_cache=True,
                **extra,
            )
        self.cache = compat.cache_of(res)
        return res.logits[:, -1].float()

    def keep(self, index: list[int]) -> None:
        """Keep only rows ``index`` (in that order); trims columns no remaining row uses on either side."""
        if len(index) == len(self.keys):
            return
        if not index:
            Seq2SeqBatch.__init__(self, self.model)  # empty: every field as new
            return
        assert self.enc is not None and self.enc_mask is not None  # (rows are running)
        assert self.dec_mask is not None and self.pos is not None and self.cache is not None
        idx = torch.tensor(index, device=self.device)
        dec_mask, enc_mask = self.dec_mask[idx], self.enc_mask[idx]
        # columns that are padding in every remaining row: leading ones (decoder), trailing ones (encoder)
        first = int(dec_mask.any(0).long().argmax())
        end = int(enc_mask.any(0).nonzero().max()) + 1
        own, cross = compat.seq2seq_cache_tensors(self.cache)
        self.cache = compat.seq2seq_cache_from_tensors(
            [(k[idx, :, first:], v[idx, :, first:]) for k, v in own],
            [(k[idx, :, :end], v[idx, :, :end]) for k, v in cross],
        )
        self.enc, self.enc_mask = self.enc[idx, :end], enc_mask[:, :end]
        self.dec_mask, self.pos = dec_mask[:, first:], self.pos[idx]
        self.keys = [self.keys[i] for i in index]
        live = {k for k in self.keys if k is not None}
        self.overrides = {k: v for k, v in self.overrides.items() if k in live}
        self._prefix = None


class WholeFill:
    """A prefill that runs whole in its one ``step`` (an encoder-decoder's: encoder once, first decoder step);
    its rows join the batch after the rows already running, as a chunked :class:`batch.Filling`'s do."""

    def __init__(self, batch: Seq2SeqBatch, ids: list[list[int]], keys: list[str | None], overrides: dict):
        self.batch, self.ids, self.keys, self.overrides = batch, ids, keys, overrides
        self.width = max(len(i) for i in ids)
        self.finished = False

    def __len__(self) -> int:
        return len(self.ids)

    def step(self, columns: int) -> torch.Tensor:
        """Run the whole prefill whatever ``columns`` says; the rows' next-token logits (n, V)."""
        logits = self.batch.prefill(self.ids, self.keys, self.overrides)
        self.finished = True
        return logits
