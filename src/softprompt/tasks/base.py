"""What a task provides to the training loop and to evaluation; shared batching helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from softprompt.errors import ConfigError, PromptFileError, TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.core.model import PromptedModel
    from softprompt.prompting.templates import EncodedPrompt

MAX_LENGTH = 256
"""Tokens an input may take (template, text and virtual tokens) unless a task is given another ``max_length``;
cut further to the backbone's context (:func:`context_limit`). The one default: train, predict, serve and the
task classes read it from here."""


def context_limit(model: PromptedModel) -> int | None:
    """Positions the backbone can take: its learned positions, else its config's (RoPE models), else None."""
    limit = model.info.max_positions or getattr(model.backbone.config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


class Task(Protocol):
    """Turns examples into batches, and a prompted model's outputs into a loss, predictions and metrics.

    ``prompts`` is one prompt name per row (rows of one batch may use different prompts: multi-task
    training and mixed-prompt serving).
    """

    main_metric: str

    def collate(self, examples: list[dict]) -> dict: ...

    def loss(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> torch.Tensor: ...

    def predict(self, model: PromptedModel, batch: dict, prompts: Sequence[str | None]) -> list: ...

    def gold(self, examples: list[dict]) -> list: ...

    def metrics(self, predictions: list, gold: list) -> dict[str, float]: ...

    def modules(self) -> dict[str, nn.Module]:
        """Trainable task modules (heads) saved with the prompt."""
        ...


def pad_rows(rows: list[list[int]], pad: int, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to (B, L) ids and attention mask."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), max(width, 1)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def insert_positions(encoded: Sequence[EncodedPrompt], num_soft: int) -> torch.Tensor | None:
    """(B, P) insertion indices of a template's soft tokens, or None when the template has none (prepend)."""
    if num_soft == 0:
        return None
    return torch.tensor([e.soft_positions for e in encoded], dtype=torch.long)


def check_prompts(model: PromptedModel, prompts: Sequence[str | None], num_soft: int) -> None:
    """A template with {soft} slots needs prompts that give exactly that many virtual input tokens."""
    if num_soft == 0:
        return
    for name in {p for p in prompts if p is not None}:
        n = model.bank.get(name).contribute().num_embeds
        if n not in (0, num_soft):
            raise TemplateError(
                f"the template has {num_soft} soft tokens but prompt {name!r} provides {n} "
                "virtual input tokens; make them equal"
            )


def tokenizer_of(model: PromptedModel) -> PreTrainedTokenizerBase:
    """``model.tokenizer``; ConfigError when the model was built without one (every task tokenizes)."""
    if model.tokenizer is None:
        raise ConfigError(
            "this task needs a tokenizer: load the model with one (PromptedModel(backbone, tokenizer))"
        )
    return model.tokenizer


def pad_id(tokenizer: PreTrainedTokenizerBase | None) -> int:
    pid = getattr(tokenizer, "pad_token_id", None)
    if pid is None:
        pid = getattr(tokenizer, "eos_token_id", None)
    return 0 if pid is None else pid


def load_heads(task: Task, tensors: dict, folder: str | os.PathLike) -> None:
    """Load a saved prompt's trained task-head tensors (``head.*`` of prompt.safetensors) into ``task``'s heads,
    ready for inference (eval mode); nothing to do for a task without heads."""
    modules = task.modules()
    if not modules:
        return
    if not tensors:
        raise PromptFileError(f"{folder}: the task needs a trained head but prompt.safetensors has none")
    target = modules["head"] if list(modules) == ["head"] else nn.ModuleDict(modules)
    try:
        target.load_state_dict(tensors)
    except RuntimeError as e:
        raise PromptFileError(
            f"{folder}: head tensors do not fit the task ({str(e).splitlines()[0]})"
        ) from None
    target.eval()
