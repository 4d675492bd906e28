"""Conditional generation (e.g. headlines): teacher-forced loss on the target, ROUGE on generated text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from softprompt.core.arch import input_embeddings
from softprompt.core.generation import generate
from softprompt.prompting.templates import parse_template
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

IGNORE = -100


class GenerationTask:
    main_metric = "rougeL"

    def __init__(
        self,
        model: PromptedModel,
        template: str,
        *,
        target_field: str = "target",
        max_length: int = MAX_LENGTH,
        max_target: int = 32,
        max_new_tokens: int = 24,
        virtual_tokens: int = 0,
    ) -> None:
        self.tok, self.kind = tokenizer_of(model), model.info.kind
        self.template = parse_template(template).bind(self.tok)
        self.target_field, self.max_target, self.max_new = target_field, max_target, max_new_tokens
        limit = min(model.info.context_length or max_length, max_length) - virtual_tokens
        reserved = max_target + 1 if self.kind == "causal" else 0
        self.enc_kw: dict[str, Any] = dict(
            answer="append" if self.kind == "causal" else "none", max_length=limit, reserved=reserved
        )
        self.eos = self.tok.eos_token_id

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def gold(self, examples: list[dict]) -> list:
        return [ex[self.target_field] for ex in examples]

    def metrics(self, predictions: list, gold: list) -> dict[str, float]:
        return metrics.generation(predictions, gold)

    def _target(self, text: str) -> list[int]:
        ids = self.tok(" " + text.strip(), add_special_tokens=False)["input_ids"][: self.max_target]
        return ids + ([self.eos] if self.eos is not None else [])

    def collate(self, examples: list[dict]) -> dict:
        enc = [self.template.encode(ex, self.tok, **self.enc_kw) for ex in examples]
        batch = {"encoded": enc, "insert_at": insert_positions(enc, self.template.num_soft)}
        if all(self.target_field in ex for ex in examples):
            targets = [self._target(ex[self.target_field]) for ex in examples]
            if self.kind == "causal":
                rows = [e.input_ids + t for e, t in zip(enc, targets)]
                labels = [[IGNORE] * len(e.input_ids) + t for e, t in zip(enc, targets)]
            else:
                rows, labels = [e.input_ids for e in enc], targets
            batch["train_ids"], batch["train_mask"] = pad_rows(rows, pad_id(self.tok))
            batch["labels"], _ = pad_rows(labels, IGNORE)
        return batch

    def loss(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        check_prompts(model, prompts, self.template.num_soft)
        dev = input_embeddings(model.backbone).weight.device
        return model(
            batch["train_ids"].to(dev),
            batch["train_mask"].to(dev),
            list(prompts),
            insert_at=batch["insert_at"],
            labels=batch["labels"].to(dev),
        ).loss

    @torch.no_grad()
    def predict(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> list:
        dev = input_embeddings(model.backbone).weight.device
        ids, mask = pad_rows([e.input_ids for e in batch["encoded"]], pad_id(self.tok), left=True)
        out = generate(
            model,
            ids.to(dev),
            mask.to(dev),
            list(prompts),
            insert_at=batch["insert_at"],
            max_new_tokens=self.max_new,
            eos_token_id=self.eos,
        )
        texts = []
        for row in out.tolist():
            if self.eos in row:
                row = row[: row.index(self.eos)]
            texts.append(self.tok.decode(row, skip_special_tokens=True).strip())  # type: ignore[union-attr]  # one row decodes to a str; transformers annotates str | list[str]
        return texts
