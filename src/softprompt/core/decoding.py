"""What generation emits at each step, for the library and the server alike: the sampling defaults, the sampler
(transformers' warpers), the draw, the EOS ids and the stop-string rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import torch
from annotated_types import Interval
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from softprompt.errors import ConfigError, check_value

TopP = Annotated[float, Interval(gt=0.0, le=1.0)]
"""What ``top_p`` accepts (the library and the HTTP bodies)."""


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """The sampling defaults, defined once: ``softprompt.generate``, the serving engine and the HTTP bodies."""

    max_tokens: int = 16
    """New tokens at most (``max_new_tokens`` in the library, ``max_tokens`` over HTTP)."""
    temperature: float = 1.0
    """Softmax temperature when sampling; 0 is greedy."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches ``top_p``; 1 keeps all."""
    stop: tuple[str, ...] = ()
    """Strings that end a row once its new text contains one (the text is cut before it)."""
    seed: int | None = None
    """Seed of a row's own generator (None: a random one)."""


DEFAULTS = Sampling()

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.core.model import PromptedModel


def make_sampler(do_sample: bool, temperature: float, top_p: float) -> LogitsProcessorList | None:
    """transformers' temperature and top-p warpers (None = greedy)."""
    if not do_sample or temperature <= 0:  # temperature 0 is greedy decoding, as in most serving APIs
        return None
    check_value("top_p", top_p, TopP)
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
    """Next token per row (B,): argmax, or a draw from the warped distribution.

    A batch of one row drawn with a generator seeded ``s`` gives what the server gives a request with seed ``s``:
    the server draws each sampled row with this function on its own generator.
    """
    if sampler is None:
        return logits.argmax(-1)
    scores = sampler(so_far, logits.float())  # type: ignore[arg-type]  # transformers annotates ids as LongTensor, no torch op returns that type
    probs = torch.softmax(scores, -1)  # (B, V)
    bad = ~torch.isfinite(probs).all(-1)  # a temperature so small (1e-45) that logits / T overflow to inf
    if bad.any():  # ... whose limit is greedy
        probs[bad] = torch.nn.functional.one_hot(logits[bad].argmax(-1), probs.shape[-1]).to(probs.dtype)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


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


def stop_list(stop: str | Sequence[str] | None) -> list[str]:
    """``stop`` as a list of strings (None: none; one string: that one)."""
    return [stop] if isinstance(stop, str) else list(stop or ())


def cut_at_stop(text: str, stop: Sequence[str]) -> int:
    """Where ``text`` ends: before the first occurrence of any ``stop`` string (its length if none occurs)."""
    return min((text.find(s) for s in stop if s and s in text), default=len(text))


class StopText:
    """The stop rule: a row ends once its new tokens, decoded with ``tokenizer``, contain one of ``stop``."""

    def __init__(self, stop: str | Sequence[str] | None, tokenizer: PreTrainedTokenizerBase | None) -> None:
        self.stop = stop_list(stop)
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"stop={stop!r}: accepted a non-empty string or a list of non-empty strings")
        if self.stop and tokenizer is None:
            raise ConfigError("stop strings need a tokenizer: load the model with one or pass tokenizer=")
        self.tokenizer = tokenizer

    def hit(self, ids: list[int]) -> bool:
        """Whether one row's new token ``ids`` contain a stop string."""
        if not self.stop:
            return False
        assert self.tokenizer is not None  # __init__ refuses stop strings without one
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        return any(s in text for s in self.stop)

    def __call__(self, out: list[torch.Tensor], done: torch.Tensor) -> torch.Tensor:
        """Rows (B,) whose new tokens (``out``: one (B,) tensor per step) hit a stop; rows ``done`` are skipped."""
        hit = torch.zeros_like(done)
        if not self.stop:
            return hit
        rows = torch.stack(out, 1).tolist()  # (B, N)
        assert self.tokenizer is not None  # __init__ refuses stop strings without one
        for b in (~done).nonzero().flatten().tolist():
            hit[b] = self.hit(rows[b])
        return hit
