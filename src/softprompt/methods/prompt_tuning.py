"""Prompt Tuning (Lester et al. 2021): N trainable input embeddings, prepended (or placed by a template)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from softprompt.core.prompt import Contribution, InitContext, Method, MethodConfig, PeftMapping
from softprompt.errors import ConfigError, check_choice, check_range
from softprompt.methods.init import embed, fill_to, text_ids, vocab_sample

INITS = ("random", "vocab", "text", "labels", "file")
LOAD_FIELDS = {"init": "random", "init_text": None, "init_file": None}
"""Loading a saved prompt builds the module without reading words or files first."""


@dataclass(kw_only=True)
class PromptTuningConfig(MethodConfig):
    """Prompt tuning hyperparameters."""

    method: str = "prompt-tuning"
    init: Literal["random", "vocab", "text", "labels", "file"] = "vocab"
    """random: uniform(-init_range, init_range); vocab: embeddings of ids sampled from the vocab_top_k most
    frequent tokens; text: embeddings of init_text's tokens (cycled); labels: the class label words' tokens, the
    rest sampled from the vocabulary; file: a saved prompt's embeddings (transfer), cut or cycled to length."""
    init_text: str | None = None
    """Text for init="text"."""
    init_file: str | None = None
    """A prompt file (folder or .safetensors) for init="file"."""
    vocab_top_k: int = 5000
    """Vocabulary ids considered for sampling; 1..vocab size."""
    init_range: float = 0.5
    """Half-width of the uniform init for init="random"; > 0."""

    def __post_init__(self):
        check_range("num_virtual_tokens", self.num_virtual_tokens, low=1, high=4096)
        check_choice("init", self.init, INITS)
        check_range("vocab_top_k", self.vocab_top_k, low=1)
        check_range("init_range", self.init_range, low=0, low_open=True)
        if self.init == "text" and not self.init_text:
            raise ConfigError('init="text" needs init_text (the words to start from)')
        if self.init == "file" and not self.init_file:
            raise ConfigError('init="file" needs init_file (a saved prompt to transfer from)')


def initial_embeddings(config: PromptTuningConfig, ctx: InitContext) -> torch.Tensor:
    """(P, H) starting values: ``config.init``, overridden where the template names words."""
    out = _by_init(config, ctx)
    for k, tid in enumerate(ctx.init_token_ids[: out.shape[0]]):
        if tid is not None:
            out[k] = embed(ctx, [tid])[0]
    return out


def _by_init(config, ctx: InitContext) -> torch.Tensor:
    n, g = config.num_virtual_tokens, torch.Generator().manual_seed(ctx.seed)
    if config.init == "random":
        return (torch.rand(n, ctx.info.hidden_size, generator=g) * 2 - 1) * config.init_range
    if config.init == "text":
        return embed(ctx, fill_to(text_ids(ctx, config.init_text), n))
    if config.init == "labels":
        if not ctx.label_words:
            raise ConfigError(
                'init="labels" needs the task\'s label words (a verbalizer task passes them; '
                'in Python: add_prompt(..., label_words=[...])); use init="vocab" or "text" otherwise'
            )
        ids = [i for w in ctx.label_words for i in text_ids(ctx, " " + w.strip())][:n]
        rest = vocab_sample(ctx, n - len(ids), config.vocab_top_k, g).tolist()
        return embed(ctx, ids + rest)
    if config.init == "file":
        from softprompt.io.atomic import load_tensors

        tensors = load_tensors(config.init_file)
        # a saved prompt's input embeddings: ejected ("embeds"), a prompt-tuning prompt's parameter ("embedding"),
        # or a multitask prompt's shared part ("shared")
        src = next((tensors[k] for k in ("embeds", "embedding", "shared") if k in tensors), None)
        if src is None or src.dim() != 2 or src.shape[-1] != ctx.info.hidden_size:
            raise ConfigError(
                f"init_file={config.init_file!r} holds no input embeddings (or multitask shared prompt) of "
                f"width {ctx.info.hidden_size}"
            )
        return src[torch.arange(n) % src.shape[0]].float().clone()
    return embed(ctx, vocab_sample(ctx, n, config.vocab_top_k, g))


class PromptTuning(nn.Module):
    def __init__(self, config: PromptTuningConfig, ctx: InitContext):
        super().__init__()
        self.config = config
        self.embedding = nn.Parameter(initial_embeddings(config, ctx))  # (P, H)

    def contribute(self) -> Contribution:
        return Contribution(embeds=self.embedding)

    def eject(self) -> Contribution:
        return Contribution(embeds=self.embedding.detach().clone())


def _load_peft(module: PromptTuning, values: torch.Tensor) -> None:
    module.embedding.copy_(values)  # (P, H): PEFT's PROMPT_TUNING tensor is the parameter itself


METHOD = Method(
    config=PromptTuningConfig,
    module=PromptTuning,
    train={"lr": 1e-1},
    train_with_head={"lr": 1e-2},
    text_start_lr=lambda given: 3e-3,
    load_fields=LOAD_FIELDS,
    peft=PeftMapping(peft_type="PROMPT_TUNING", fields=lambda cfg: {"init": "random"}, load=_load_peft),
)
"""Training: lr 1e-1 from bench/results/lr_sweep-smollm2.md (SmolLM2-135M on Rotten Tomatoes, batch 8, 24 steps,
seed 0, accuracy on 100 validation reviews, about +-5 points of noise): 3e-3 / 1e-2 / 3e-2 / 1e-1 / 3e-1 give
0.68 -> 0.78 / 0.74 / 0.75 / 0.84 / 0.80; 1e-1 best and 3e-1 does not overshoot (was 1e-2, from the 2026-11-25
quality run). Warm-up, steps and batch size keep the loop's defaults (not swept). With a trained head (MiniLM-L6,
a bare encoder, bench/results/lr_sweep-minilm.md, 100 steps, 200 validation reviews, majority 0.510): 1e-2
(0.720, best there). Started from a chosen template's lead-in words: 3e-3 (the demo's; larger rates wash the
words out)."""
