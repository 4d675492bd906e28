"""Log-probabilities and incremental detokenization with stop strings, per row.

Token choice is not here: the engine draws with ``core.decoding`` (transformers' warpers), as
``softprompt.generate`` does, and a row ends at a stop string by the library's rule (``decoding.StopText``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from softprompt.core.decoding import StopText, cut_at_stop

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def top_logprobs(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """log p(token) and the ``k`` most likely tokens with their log-probabilities, from logits (V,)."""
    lp = torch.log_softmax(logits.float(), -1)
    top = lp.topk(k) if k else None
    pairs = [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))
    return float(lp[token]), pairs


class Detokenizer:
    """Text deltas from a growing token list (stable under tokenizers that merge across tokens), with stops.

    The row ends where ``softprompt.generate`` ends it (its new tokens contain a stop string) and its text is
    cut where ``generate_text`` cuts it (before the first stop string); text that may begin a stop string is
    held back until it cannot.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: list[str]) -> None:
        self.tok, self.stop = tokenizer, [s for s in stop if s]
        self.rule = StopText(self.stop, tokenizer)
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0
        self.text = ""  # accepted text (cut at a stop string)
        self.sent = 0  # how much of it was emitted

    def _decode(self, ids) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)  # type: ignore[return-value]  # one id list: a str (annotated str | list[str])

    def add(self, token: int) -> tuple[str, bool]:
        """Append ``token``; returns (new text, whether a stop string ended the row)."""
        self.ids.append(token)
        stopped = self.rule.hit(self.ids)
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        now = self._decode(self.ids[self.prefix_offset :])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return (self.flush(), True) if stopped else ("", False)  # a partial character, or a merge
        delta = now[len(before) :]
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._emit(delta, stopped)

    def _emit(self, delta: str, stopped: bool) -> tuple[str, bool]:
        """Accept ``delta``; emit what can no longer turn into a stop string (the rest waits for ``flush``)."""
        full = self.text + delta
        end = cut_at_stop(full, self.stop)
        if end < len(full) or stopped:
            self.text = full[:end]
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
