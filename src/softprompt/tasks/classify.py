"""Classification by scoring label words (hard prompts, prompt tuning, P-tuning, prefixes alike).

Causal LMs score the label word as the continuation after the prompt; masked LMs at the mask token (a K-token
word gets K mask tokens, each scoring its token, as in PET); seq2seq models in the decoder (after the
tokenizer's sentinel, e.g. T5's ``<extra_id_0>``). When every label word is one token (causal and masked LMs),
one forward of B rows scores all labels. Multi-token words on causal LMs: the shared context runs once
(left-padded, its KV cache kept) and all W words' remaining tokens follow it as one (B*W, T-1) continuation on
that cache (``_cached_words``); masked and seq2seq models score each (example, word) pair as its own row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from softprompt.core import compat, kv
from softprompt.core.arch import input_embeddings
from softprompt.errors import DataError, check_value
from softprompt.prompting.templates import Template, parse_template
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks import metrics
from softprompt.tasks.base import (
    MAX_LENGTH,
    check_prompts,
    insert_positions,
    pad_id,
    pad_rows,
    tokenizer_of,
)

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.tasks.choose import TemplateChoice

IGNORE = -100
Objective = Literal["candidates", "gold"]
"""Training loss: cross-entropy over the verbalizer's labels (every candidate word scored), or the gold
word's own language-modelling loss, one row per example (the P-tuning paper's LAMA objective; the default for
probing, where hundreds of multi-token candidates would each cost a continuation row per example)."""
CONTINUATION_ROWS = 1024
"""Most (example, word, token) positions scored in one continuation forward (bounds the (N, V) logits)."""


class VerbalizerTask:
    """Classification (or probing over candidate answers) through a template and a verbalizer."""

    choice: TemplateChoice | None = None
    """The template ``make_task`` chose from candidates (``tasks.choose``), None when it was given."""

    def __init__(
        self,
        model: PromptedModel,
        template: str | Template,
        verbalizer: Verbalizer,
        *,
        label_field: str = "label",
        max_length: int = MAX_LENGTH,
        on_overflow: str = "truncate",
        virtual_tokens: int = 0,
        probing: bool = False,
        objective: Objective | None = None,
    ) -> None:
        self.tok = tokenizer_of(model)
        self.kind = model.info.kind
        if self.kind == "encoder":
            raise DataError(
                "label-word scoring needs a language-model head; use a HeadTask for bare encoders"
            )
        self.template = parse_template(template) if isinstance(template, str) else template
        self.template = self.template.bind(self.tok)
        self.verbalizer, self.label_field = verbalizer, label_field
        self.table = verbalizer.flatten(self.tok)
        self.answer = "append" if self.kind == "causal" else ("mask_token" if self.tok.mask_token else "none")
        self.single = self.kind != "seq2seq" and bool(self.table.token_mask.sum(1).eq(1).all())
        limit = model.info.context_length or max_length
        self.enc_kw: dict[str, Any] = dict(
            answer=self.answer,
            max_length=min(limit, max_length) - virtual_tokens,
            on_overflow=on_overflow,
            reserved=self.table.token_ids.shape[1] - 1,
        )
        self.decoder_start = getattr(model.backbone.config, "decoder_start_token_id", None) or 0
        self.main_metric = "p_at_1" if probing else "accuracy"
        self.probing = probing
        self.objective = objective or ("gold" if probing else "candidates")
        check_value("objective", self.objective, Objective)
        self.gold_words: dict[int, list[int]] = {}  # label -> its first word's tokens (the gold objective)
        for w, lab in enumerate(self.table.word_label.tolist()):
            self.gold_words.setdefault(lab, self.table.token_ids[w][self.table.token_mask[w]].tolist())

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def gold(self, examples: list[dict]) -> list:
        return [self.verbalizer.index(ex[self.label_field]) for ex in examples]

    def metrics(self, predictions: list, gold: list) -> dict[str, float]:
        return (metrics.probing if self.probing else metrics.classification)(predictions, gold)

    def collate(self, examples: list[dict]) -> dict:
        enc = [self.template.encode(ex, self.tok, **self.enc_kw) for ex in examples]
        return {
            "encoded": enc,
            "labels": torch.tensor(self.gold(examples)) if self._labelled(examples) else None,
        }

    def _labelled(self, examples):
        return all(self.label_field in ex for ex in examples)

    def scores(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        """(B, C) label scores (log-probability based, see verbalizer)."""
        check_prompts(model, prompts, self.template.num_soft)
        enc = batch["encoded"]
        if self.single:
            return self.table.label_scores(self._single(model, enc, prompts)[..., None])
        if self.kind == "causal" and model.info.accepts_position_ids:
            return self.table.label_scores(self._cached_words(model, enc, prompts))
        return self.table.label_scores(self._per_word(model, enc, prompts))

    def loss(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        if self.objective == "gold":
            check_prompts(model, prompts, self.template.num_soft)
            return self._gold_loss(model, batch["encoded"], list(prompts), batch["labels"])
        return F.cross_entropy(self.scores(model, batch, prompts), batch["labels"].to(self._device(model)))

    @torch.no_grad()
    def predict(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> list:
        return self.scores(model, batch, prompts).argmax(-1).tolist()

    @staticmethod
    def _device(model):
        return input_embeddings(model.backbone).weight.device

    def _single(self, model, enc, prompts) -> torch.Tensor:
        """(B, W) log-probs of single-token words from one forward."""
        ids, mask = pad_rows([e.input_ids for e in enc], pad_id(self.tok))
        dev = self._device(model)
        out = model(
            ids.to(dev),
            mask.to(dev),
            list(prompts),
            insert_at=insert_positions(enc, self.template.num_soft),
            hidden=False,
            last_only=self.kind == "causal",
        )
        if self.kind == "causal":
            logits = out.next_logits  # (B, V)
        else:
            at = torch.tensor([e.answer_index for e in enc], device=dev)
            logits = out.logits[torch.arange(len(enc), device=dev), at]  # (B, V)
        return logits.float().log_softmax(-1)[:, self.table.token_ids[:, 0].to(dev)]

    def _cached_words(self, model, enc, prompts) -> torch.Tensor:
        """(B, W, T) token log-probs of every word after every example: each context once, on the KV cache."""
        W, T = self.table.token_ids.shape
        per = max(1, CONTINUATION_ROWS // (W * max(T - 1, 1)))  # examples per chunk
        return torch.cat(
            [
                self._cached_chunk(model, enc[i : i + per], list(prompts[i : i + per]))
                for i in range(0, len(enc), per)
            ]
        )

    def _cached_chunk(self, model, enc, prompts) -> torch.Tensor:
        dev, (W, T) = self._device(model), self.table.token_ids.shape
        words, wmask = self.table.token_ids.to(dev), self.table.token_mask.to(dev)  # (W, T)
        ids, mask = pad_rows([e.input_ids for e in enc], pad_id(self.tok), left=True)
        insert_at = insert_positions(enc, self.template.num_soft)
        exp, batch = model.prepare(ids.to(dev), mask.to(dev), prompts, insert_at=insert_at, left_pad=True)
        kw = model.backbone_kwargs(exp, batch)
        last = {"logits_to_keep": 1} if compat.takes_logits_to_keep(model.backbone) else {}
        cache = compat.new_cache(model.backbone)
        res = model.backbone(**kw, **last, **compat.cache_kwargs(model.backbone, cache), use_cache=True)
        first = res.logits[:, -1].float().log_softmax(-1)[:, words[:, 0]]  # (B, W)
        if T == 1:
            return first[..., None]
        B = len(enc)
        rows = torch.arange(B, device=dev).repeat_interleave(W)  # (B*W,) each row's example
        cache = compat.cache_of(res)  # (the same cache object, filled)
        cache.batch_select_indices(rows)  # every example's cache, once per word
        cont = words[:, :-1].repeat(B, 1)  # (B*W, T-1) each word's tokens but its last
        step = {
            "inputs_embeds": input_embeddings(model.backbone)(cont),
            "attention_mask": torch.cat([exp.mask[rows], exp.mask.new_ones(B * W, T - 1)], 1),  # pads: last
            "position_ids": exp.position_ids[rows, -1:] + torch.arange(1, T, device=dev),
        }
        if batch.kv is not None:  # prefixes are applied at attention time: the continuation needs them too
            step[kv.KWARG] = kv.KVPrefix(kv=batch.kv[:, :, rows], mask=batch.kv_mask[rows])
        out = model.backbone(**step, **compat.cache_kwargs(model.backbone, cache), use_cache=True)
        rest = out.logits.float().log_softmax(-1)  # (B*W, T-1, V)
        rest = rest.gather(-1, words[:, 1:].repeat(B, 1)[..., None])[..., 0]  # (B*W, T-1)
        lp = torch.cat([first.reshape(B * W, 1), rest], 1).view(B, W, T)
        return lp.masked_fill(~wmask, 0.0)

    def _per_word(self, model, enc, prompts) -> torch.Tensor:
        """(B, W, T) token log-probs, one row per (example, word)."""
        W, T = self.table.token_ids.shape
        words = [self.table.token_ids[w][self.table.token_mask[w]].tolist() for w in range(W)]
        pairs = [(e, words[w], p) for e, p in zip(enc, prompts) for w in range(W)]
        return self._word_logprobs(model, pairs, T).view(len(enc), W, T)

    def _gold_loss(self, model, enc, prompts, labels: torch.Tensor) -> torch.Tensor:
        """Mean over examples of the gold word's mean token NLL (one row per example, not per candidate)."""
        pairs = [(e, self.gold_words[int(y)], p) for e, y, p in zip(enc, labels, prompts)]
        lp = self._word_logprobs(model, pairs, max(len(w) for _, w, _ in pairs))  # (B, T), 0 past a word
        n = torch.tensor([len(w) for _, w, _ in pairs], device=lp.device, dtype=lp.dtype)
        per = lp.sum(1) / (n if self.verbalizer.normalize else 1.0)
        return -per.mean()

    def _word_logprobs(self, model, pairs, T: int) -> torch.Tensor:
        """(N, T) token log-probs of each (example, word tokens, prompt) pair as its own row."""
        rows, labels, soft, dec = [], [], [], []
        for e, word, _ in pairs:
            r, lab, sp, d = self._word_row(e, word)
            rows.append(r)
            labels.append(lab)
            soft.append(sp)
            dec.append(d)
        dev = self._device(model)
        ids, mask = pad_rows(rows, pad_id(self.tok))
        lab, _ = pad_rows(labels, IGNORE)
        kw = {}
        if self.kind == "seq2seq":
            dec_ids, _ = pad_rows(dec, pad_id(self.tok))
            kw = {"decoder_input_ids": dec_ids.to(dev)}
        insert_at = torch.tensor(soft) if self.template.num_soft else None
        row_prompts = [p for _, _, p in pairs]
        lp = model(ids.to(dev), mask.to(dev), row_prompts, insert_at=insert_at, labels=lab.to(dev), **kw)
        lp = lp.label_logprobs  # (N, L)
        picked = (lab != IGNORE).to(dev)
        out = lp.new_zeros(len(rows), T)
        for i in range(len(rows)):  # gather each row's word-token log-probs in order
            vals = lp[i][picked[i]]
            out[i, : vals.shape[0]] = vals
        return out

    def _word_row(self, e, word: list[int]):
        """(input ids, caller-aligned labels, soft positions, decoder ids) scoring ``word`` for example ``e``."""
        ids, sp = list(e.input_ids), list(e.soft_positions)
        if self.kind == "causal":
            return ids + word, [IGNORE] * len(ids) + word, sp, None
        if self.kind == "masked":
            a, k = e.answer_index, len(word)
            new = ids[:a] + [ids[a]] * k + ids[a + 1 :]
            lab = [IGNORE] * len(new)
            lab[a : a + k] = word
            return new, lab, [p + k - 1 if p > a else p for p in sp], None
        lead = [self.tok.mask_token_id] if (self.tok.mask_token or "").startswith("<extra_id") else []
        full = lead + word
        return ids, [IGNORE] * len(lead) + word, sp, [self.decoder_start] + full[:-1]
