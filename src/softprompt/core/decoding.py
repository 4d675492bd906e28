"""What generation emits at each step: the sampler (transformers' warpers), the EOS ids, stop strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.core.model import PromptedModel


def make_sampler(do_sample: bool, temperature: float, top_p: float) -> LogitsProcessorList | None:
    """transformers' temperature and top-p warpers (None = greedy)."""
    if not do_sample or temperature <= 0:  # temperature 0 is greedy decoding, as in most serving APIs
        return None
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p={top_p}: accepted 0 < top_p <= 1")
    warpers = LogitsProcessorList([TemperatureLogitsWarper(float(temperature))])
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(float(top_p)))
    return warpers


def pick(
    logits: torch.Tensor,
    sampler: LogitsProcessorList | None,
    so_far: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Next token per row (B,): argmax, or a draw from the warped distribution."""
    if sampler is None:
        return logits.argmax(-1)
    scores = sampler(so_far, logits.float())  # type: ignore[arg-type]  # transformers annotates ids as LongTensor, no torch op returns that type
    return torch.multinomial(torch.softmax(scores, -1), 1, generator=generator)[:, 0]


def eos_ids(model: PromptedModel, eos_token_id: int | Sequence[int] | None = None) -> list[int]:
    """Every id that ends a row: ``eos_token_id`` (int or list) or, when None, all of the model's EOS ids."""
    if eos_token_id is None:
        gen = getattr(model.backbone, "generation_config", None)
        eos_token_id = getattr(gen, "eos_token_id", None)
        if eos_token_id is None:
            eos_token_id = model.backbone.config.eos_token_id
    if eos_token_id is None:
        return []
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return [int(i) for i in ids]


class StopText:
    """Rows whose new text contains one of ``stop`` (decoded with ``tokenizer``)."""

    def __init__(self, stop: str | Sequence[str] | None, tokenizer: PreTrainedTokenizerBase | None) -> None:
        self.stop = [stop] if isinstance(stop, str) else list(stop or ())
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"stop={stop!r}: accepted a non-empty string or a list of non-empty strings")
        if self.stop and tokenizer is None:
            raise ConfigError("stop strings need a tokenizer: load the model with one or pass tokenizer=")
        self.tokenizer = tokenizer

    def __call__(self, out: list[torch.Tensor], done: torch.Tensor) -> torch.Tensor:
        hit = torch.zeros_like(done)
        if not self.stop:
            return hit
        rows = torch.stack(out, 1).tolist()  # (B, N)
        assert self.tokenizer is not None  # __init__ refuses stop strings without one
        for b in (~done).nonzero().flatten().tolist():
            text = self.tokenizer.decode(rows[b], skip_special_tokens=False)
            hit[b] = any(s in text for s in self.stop)
        return hit
