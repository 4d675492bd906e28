"""Per-row token choice (greedy, temperature, top-p with the row's own seeded generator), log-probabilities,
and incremental detokenization with stop strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """The next token of one row from its logits (V,): greedy at temperature 0."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sp, si = probs.sort(descending=True)
        keep = sp.cumsum(-1) - sp < top_p  # the smallest set whose mass reaches top_p (the first always kept)
        probs = torch.zeros_like(probs).scatter(-1, si, sp * keep)
    return int(torch.multinomial(probs, 1, generator=generator))


def top_logprobs(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """log p(token) and the ``k`` most likely tokens with their log-probabilities, from logits (V,)."""
    lp = torch.log_softmax(logits.float(), -1)
    top = lp.topk(k) if k else None
    pairs = [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))
    return float(lp[token]), pairs


class Detokenizer:
    """Text deltas from a growing token list (stable under tokenizers that merge across tokens), with stops."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: list[str]) -> None:
        self.tok, self.stop = tokenizer, [s for s in stop if s]
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0
        self.text = ""  # accepted text (cut at a stop string)
        self.sent = 0  # how much of it was emitted

    def _decode(self, ids) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)  # type: ignore[return-value]  # one id list: a str (annotated str | list[str])

    def add(self, token: int) -> tuple[str, bool]:
        """Append ``token``; returns (new text, whether a stop string ended the text)."""
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        now = self._decode(self.ids[self.prefix_offset :])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return "", False  # nothing printable yet (a partial character, or a merge)
        delta = now[len(before) :]
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._emit(delta)

    def _emit(self, delta: str) -> tuple[str, bool]:
        """Accept ``delta``; emit what can no longer turn into a stop string (the rest waits for ``flush``)."""
        full = self.text + delta
        longest = max((len(s) for s in self.stop), default=0)
        lo = max(0, self.sent - longest)
        hits = [at for at in (full.find(s, lo) for s in self.stop) if at != -1]
        if hits:
            self.text = full[: min(hits)]
            return self.flush(), True
        self.text = full
        held = max(
            (n for s in self.stop for n in range(1, len(s)) if full.endswith(s[:n])), default=0
        )  # a tail that may begin a stop string
        safe = max(self.sent, len(full) - held)
        out, self.sent = full[self.sent : safe], safe
        return out, False

    def flush(self) -> str:
        """The text not emitted yet (at the end of the row)."""
        out, self.sent = self.text[self.sent :], len(self.text)
        return out
