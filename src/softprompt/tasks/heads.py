"""Tasks solved with a trained head on the hidden states: sequence classification and sequence labeling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from softprompt.core.arch import input_embeddings
from softprompt.errors import DataError
from softprompt.prompting.templates import parse_template
from softprompt.tasks import metrics
from softprompt.tasks.base import MAX_LENGTH, pad_id, pad_rows, tokenizer_of
from softprompt.tasks.layers import ClassificationHead, Pool, TokenClassificationHead

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel

IGNORE = -100


def _device(model):
    return input_embeddings(model.backbone).weight.device


class HeadClassificationTask:
    """Classification with a pooled head (P-tuning v2's recipe). The text is the template without {mask}."""

    main_metric = "accuracy"
    pool_source: str | None = None
    """Why the head pools as it does (set by ``make_task``: "asked for", the checkpoint's pooling config, ...)."""

    def __init__(
        self,
        model: PromptedModel,
        labels: Sequence[str],
        *,
        template: str = "{text}",
        label_field: str = "label",
        pool: Pool | None = None,
        max_length: int = MAX_LENGTH,
        dropout: float = 0.1,
    ):
        self.tok, self.labels, self.label_field = tokenizer_of(model), list(labels), label_field
        self.template = parse_template(template)
        pool = pool or ("last" if model.info.kind == "causal" else "first")
        self.head = ClassificationHead(model.info.hidden_size, len(self.labels), pool, dropout).to(
            _device(model)
        )
        self.max_length = min(model.info.context_length or max_length, max_length)

    def modules(self) -> dict[str, nn.Module]:
        return {"head": self.head}

    def gold(self, examples: list[dict]) -> list:
        try:
            return [self.labels.index(ex[self.label_field]) for ex in examples]
        except ValueError:
            bad = next(ex[self.label_field] for ex in examples if ex[self.label_field] not in self.labels)
            raise DataError(f"label {bad!r} is not one of the task's labels {self.labels}") from None

    def metrics(self, predictions: list, gold: list) -> dict[str, float]:
        return metrics.classification(predictions, gold)

    def collate(self, examples: list[dict]) -> dict:
        enc = [
            self.template.encode(ex, self.tok, answer="none", max_length=self.max_length) for ex in examples
        ]
        ids, mask = pad_rows([e.input_ids for e in enc], pad_id(self.tok))
        labelled = all(self.label_field in ex for ex in examples)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor(self.gold(examples)) if labelled else None,
        }

    def logits(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        dev = _device(model)
        out = model(batch["input_ids"].to(dev), batch["attention_mask"].to(dev), list(prompts), hidden=True)
        return self.head(out.hidden, batch["attention_mask"].to(dev))

    def loss(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        return F.cross_entropy(self.logits(model, batch, prompts).float(), batch["labels"].to(_device(model)))

    @torch.no_grad()
    def predict(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> list:
        return self.logits(model, batch, prompts).argmax(-1).tolist()


class LabelingTask:
    """Sequence labeling: one tag per word; the first sub-token of each word carries its tag."""

    main_metric = "token_f1"

    def __init__(
        self,
        model: PromptedModel,
        tags: Sequence[str],
        *,
        tokens_field: str = "tokens",
        tags_field: str = "tags",
        max_length: int = MAX_LENGTH,
        dropout: float = 0.1,
    ):
        self.tok, self.tags = tokenizer_of(model), list(tags)
        self.tokens_field, self.tags_field = tokens_field, tags_field
        self.head = TokenClassificationHead(model.info.hidden_size, len(self.tags), dropout).to(
            _device(model)
        )
        self.max_length = min(model.info.context_length or max_length, max_length)

    def modules(self) -> dict[str, nn.Module]:
        return {"head": self.head}

    def gold(self, examples: list[dict]) -> list:
        return [list(ex[self.tags_field]) for ex in examples]

    def metrics(self, predictions: list, gold: list) -> dict[str, float]:
        return metrics.labeling(predictions, gold)

    def collate(self, examples: list[dict]) -> dict:
        enc = self.tok(
            [ex[self.tokens_field] for ex in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
        )
        rows, labels, firsts = [], [], []
        for i, ex in enumerate(examples):
            words, seen, lab, first = enc.word_ids(i), set(), [], []
            for j, w in enumerate(words):
                new = w is not None and w not in seen
                seen.add(w)
                tag = ex.get(self.tags_field)
                lab.append(self.tags.index(tag[w]) if new and tag is not None else IGNORE)
                if new:
                    first.append(j)
            rows.append(enc["input_ids"][i])
            labels.append(lab)
            firsts.append(first)
        ids, mask = pad_rows(rows, pad_id(self.tok))
        label_ids, _ = pad_rows(labels, IGNORE)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": label_ids,
            "first": firsts,
            "num_words": [len(ex[self.tokens_field]) for ex in examples],
        }

    def logits(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        dev = _device(model)
        out = model(batch["input_ids"].to(dev), batch["attention_mask"].to(dev), list(prompts), hidden=True)
        return self.head(out.hidden)  # (B, L, T): caller-aligned, no virtual positions

    def loss(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor:
        logits = self.logits(model, batch, prompts)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), batch["labels"].to(logits.device).flatten(), ignore_index=IGNORE
        )

    @torch.no_grad()
    def predict(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> list:
        best = self.logits(model, batch, prompts).argmax(-1).tolist()
        out = []
        for row, first, n in zip(best, batch["first"], batch["num_words"]):
            tags = [self.tags[row[j]] for j in first]
            out.append(tags + ["O"] * (n - len(tags)))  # words cut by truncation count as "O"
        return out
