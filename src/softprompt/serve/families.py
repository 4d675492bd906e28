"""Which backbones the engine generates on, and the running batch each kind of backbone decodes with.

Causal LMs, sliding-window ones included (Mistral, Gemma 2/3), decode with ``batch.RowBatch``; encoder-decoders
(T5, BART) with ``seq2seq.Seq2SeqBatch``. Any other backbone cannot generate through the server: ``refusal``
says why, naming the model and what works instead (the engine says so at startup and on each request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from softprompt.core import compat

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.serve.batch import RowBatch
    from softprompt.serve.seq2seq import Seq2SeqBatch


class Filler(Protocol):
    """Joining rows being prefilled: ``step(columns)`` feeds the next chunk and returns their next-token logits
    (n, V) after the last one (else None); the batch then ``join``s them (``batch.Filling``, ``seq2seq.WholeFill``)."""

    width: int

    def __len__(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def step(self, columns: int) -> torch.Tensor | None: ...


INSTEAD = (
    "/v1/classify still works with prompts trained for classification; to generate, serve a causal LM "
    "(Llama, Qwen2, Mistral, Gemma 2, GPT-2) or an encoder-decoder (T5, BART)"
)


def model_name(model: PromptedModel) -> str:
    """How the server names a backbone in messages: its class and transformers family."""
    return f"{type(model.backbone).__name__} ({model.info.family})"


def refusal(model: PromptedModel) -> str | None:
    """Why ``model`` cannot generate through the server (naming it, the reason, what works), or None."""
    kind = model.info.kind
    if kind == "causal":
        return None
    if kind == "seq2seq":
        why = compat.decoder_positions_unknown(model.backbone)
        if why is None:
            return None
        return f"{model_name(model)} cannot generate through the server: {why}; {INSTEAD}"
    what = "a masked LM" if kind == "masked" else "an encoder without a language-model head"
    return (
        f"{model_name(model)} cannot generate through the server: it is {what}, which predicts tokens in "
        f"place and has no next-token head to continue a text; {INSTEAD}"
    )


def new_batch(model: PromptedModel) -> RowBatch | Seq2SeqBatch:
    """An empty running batch for ``model``'s kind of backbone."""
    if model.info.kind == "seq2seq":
        from softprompt.serve.seq2seq import Seq2SeqBatch

        return Seq2SeqBatch(model)
    from softprompt.serve.batch import RowBatch

    return RowBatch(model)
