"""The joining completions' prefill: which waiting requests join together, how many columns each step feeds, and
the step that runs it with the running rows' decode.

A group of joining requests fits one chunk of ``max_tokens_per_step`` prompt tokens (rows x the longest
sequence, counting a prompt's virtual tokens only where they sit in the sequence: key/value prefixes cost no
columns), or is one longer prompt alone, split into chunks. One group prefills at a time. Each scheduler step
decodes the running rows and feeds the group's next chunk — in ONE forward where the backbone allows it
(``RowBatch.step``: causal, no sliding window), else in two. When the last chunk ran, the group's rows take
their first token and join the running batch.

Bound (given free rows): a group that fits one chunk prefills in one step, a longer prompt in ``ceil(columns /
max_tokens_per_step)``; the next group starts the step after. So a completion has its first token within ``g +
ceil(k / max_tokens_per_step)`` steps of being queued, where ``g`` groups with ``k`` prompt tokens in all (rows x
width, its own group included) are ahead of it — ``q + 1`` steps behind ``q`` requests that each fit one chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from softprompt.serve.batch import Filling, RowBatch
from softprompt.serve.limits import EngineConfig
from softprompt.serve.requests import Completion

if TYPE_CHECKING:
    from softprompt.serve.families import Filler
    from softprompt.serve.seq2seq import Seq2SeqBatch


def columns_of(r: Completion) -> int:
    """The sequence columns request ``r`` prefills: its tokens, plus its prompt's virtual tokens where they are
    inserted into the sequence (not where the prompt runs as a key/value prefix)."""
    inserted = r.entry is not None and r.entry.prefix is None
    return len(r.ids) + (r.entry.virtual_tokens if inserted and r.entry is not None else 0)


class Prefill:
    """The group being prefilled (``filling``, its requests ``joining``), at most one at a time."""

    decode_first = False
    """Token budget per step: False gives the chunk all ``max_tokens_per_step`` columns (prefill first); True
    takes one per running row off it first (decode first, as vLLM's chunked prefill does)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.filling: Filler | None = None
        self.joining: list[Completion] = []

    def group(self, waiting: list[Completion], free: int) -> list[Completion]:
        """The first waiting completions that prefill together: at most ``free`` rows, fitting one chunk."""
        joining: list[Completion] = []
        width = 0
        for r in waiting[: max(free, 0)]:
            n = columns_of(r)
            if joining and (len(joining) + 1) * max(width, n) > self.config.max_tokens_per_step:
                break
            joining.append(r)
            width = max(width, n)
        return joining

    def start(self, batch: RowBatch | Seq2SeqBatch, joining: list[Completion]) -> None:
        """Begin the prefill of ``joining`` (a refused input raises SoftPromptError; nothing starts)."""
        # every row's prompt key (virtual tokens of a windowed model stay in the sequence); overrides for prefixes
        keys = [None if r.entry is None else r.entry.key for r in joining]
        overrides = {
            r.entry.key: r.entry.prefix for r in joining if r.entry is not None and r.entry.prefix is not None
        }
        self.filling = batch.filling([r.ids for r in joining], keys, overrides)
        self.joining = joining

    def clear(self) -> None:
        self.filling, self.joining = None, []

    def columns(self, rows: int, running: int) -> int:
        """Columns each of the group's ``rows`` rows feeds this step (at least one)."""
        budget = self.config.max_tokens_per_step - (running if self.decode_first else 0)
        return max(budget // rows, 1)

    def step(
        self, batch: RowBatch | Seq2SeqBatch, last: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[Completion]]:
        """Decode the running rows (``last``: their last tokens, None when none runs) and feed the group's next
        chunk; returns the logits of the running rows then of the rows that joined (B + n, V, in pieces) and the
        requests that joined the running batch this step."""
        filling = self.filling
        if filling is None:
            return ([] if last is None else [batch.decode(last)]), []
        cols = self.columns(len(filling), 0 if last is None else len(last))
        if isinstance(batch, RowBatch) and isinstance(filling, Filling) and batch.packs:
            dec, fill = batch.step(last, filling, cols)  # one forward
        else:
            dec = None if last is None else batch.decode(last)
            fill = filling.step(cols)
        logits = [x for x in (dec, fill) if x is not None]
        if fill is None:
            return logits, []
        batch.join(filling)
        joined = self.joining
        self.clear()
        return logits, joined
