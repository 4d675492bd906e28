"""Prefix-Tuning (Li & Liang 2021): trainable key/value prefixes in every attention layer.

Training form: a (P, H_kv*D) embedding (PEFT's width; ``embed_dim`` overrides) -> Linear -> Tanh -> Linear MLP
producing every slot's keys and values (on encoder-decoders: encoder self-attention, decoder self-attention
and cross-attention, each its own slots), added to a fixed ``base`` prefix. By default (``init="words"``) the
base is the frozen model's own keys/values for real words and the MLP's last layer starts at zero, so step 0
is exactly that real-word prefix (Li & Liang: initializing with real words' activations is what makes prefix
tuning train reliably); ``init="random"`` is PEFT's form (base zero, every MLP layer random).
``eject`` runs the MLP once and keeps only the (S, 2, H_kv, P, D) tensor. Without reparameterization the
prefix itself is the parameter, started from the same real-word activations (that is P-tuning v2's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from softprompt.core.prompt import (
    Contribution,
    InitContext,
    Method,
    MethodConfig,
    PeftMapping,
    eject_in_eval,
    seeded_init,
)
from softprompt.errors import ConfigError, check_choice, check_range
from softprompt.methods.init import fill_to, text_ids, vocab_sample

INITS = ("words", "text", "random")
LOAD_FIELDS = {"init": "random", "init_text": None}
"""Loading a saved prefix builds the module without reading the frozen model's keys/values first."""


@dataclass(kw_only=True)
class PrefixTuningConfig(MethodConfig):
    """Prefix tuning hyperparameters."""

    method: str = "prefix-tuning"
    num_virtual_tokens: int = 10
    reparameterize: bool = True
    """Train through the MLP (Li & Liang); False trains the prefix directly."""
    mlp_hidden: int = 512
    """Width of the reparameterization MLP; 1..65536."""
    embed_dim: int | None = None
    """Width of the MLP's input embedding; default: one layer's key/value width (H_kv x D), as PEFT."""
    dropout: float = 0.0
    """Dropout on the prefix during training; 0..0.9."""
    init: Literal["words", "text", "random"] = "words"
    """words: the frozen model's own keys/values for real words: the template's named {soft:"..."} words and
    the task's label words, the rest sampled from the vocab_top_k most frequent tokens (Li & Liang); text: the
    same for init_text's tokens (cycled); random: N(0, 1) prefix or MLP embedding (as PEFT). With
    reparameterize, words/text make the prefix those activations plus an MLP offset that starts at zero."""
    init_text: str | None = None
    """Words for init="text" (cycled to num_virtual_tokens)."""
    vocab_top_k: int = 5000
    """init="words": vocabulary ids sampled to fill the prefix after the task's words; 1..vocab size."""

    def __post_init__(self):
        check_range("num_virtual_tokens", self.num_virtual_tokens, low=1, high=4096)
        check_choice("init", self.init, INITS)
        if self.init == "text" and not self.init_text:
            raise ConfigError('init="text" needs init_text (the words whose activations start the prefix)')
        check_range("mlp_hidden", self.mlp_hidden, low=1, high=65536)
        if self.embed_dim is not None:
            check_range("embed_dim", self.embed_dim, low=1, high=65536)
        check_range("dropout", self.dropout, low=0.0, high=0.9)
        check_range("vocab_top_k", self.vocab_top_k, low=1)


def word_ids(config: PrefixTuningConfig, ctx: InitContext) -> list[int]:
    """The ``num_virtual_tokens`` token ids whose activations start the prefix (``init`` words or text)."""
    n = config.num_virtual_tokens
    if config.init == "text":
        return fill_to(text_ids(ctx, config.init_text or ""), n)  # (set: __post_init__)
    ids = [t for t in ctx.init_token_ids if t is not None]
    if ctx.tokenizer is not None:
        ids += [i for w in ctx.label_words for i in text_ids(ctx, " " + w.strip())]
    ids = ids[:n]
    g = torch.Generator().manual_seed(ctx.seed)
    return ids + vocab_sample(ctx, n - len(ids), config.vocab_top_k, g).tolist()


def word_prefix(config: PrefixTuningConfig, ctx: InitContext, width: int) -> torch.Tensor:
    """(P, S*2*H_kv*D) the frozen model's own keys/values for ``word_ids``, flattened per position."""
    if ctx.token_kv is None:
        raise ConfigError(
            f'init="{config.init}" needs the frozen model\'s keys/values (InitContext.token_kv); '
            'add the prompt through PromptedModel.add_prompt or use init="random"'
        )
    ids = word_ids(config, ctx)
    kv = ctx.token_kv(ids).float()  # (S, 2, H_kv, P, D)
    return kv.permute(3, 0, 1, 2, 4).reshape(len(ids), width).cpu()


class PrefixTuning(nn.Module):
    @seeded_init  # parameters drawn from ctx.seed without touching the global RNG
    def __init__(self, config: PrefixTuningConfig, ctx: InitContext):
        super().__init__()
        self.config = config
        info = ctx.info
        self.shape = (len(info.slots), 2, info.num_kv_heads, info.head_dim)  # (S, 2, H_kv, D)
        width = len(info.slots) * 2 * info.num_kv_heads * info.head_dim
        words = config.init != "random"
        if config.reparameterize:
            d = config.embed_dim or info.num_kv_heads * info.head_dim
            self.embedding = nn.Embedding(config.num_virtual_tokens, d)
            self.transform: nn.Module = nn.Sequential(
                nn.Linear(d, config.mlp_hidden), nn.Tanh(), nn.Linear(config.mlp_hidden, width)
            )
            base = torch.zeros(config.num_virtual_tokens, width)
            if words:  # step 0 = the real-word prefix exactly: the MLP's offset starts at zero
                base = word_prefix(config, ctx, width)
                nn.init.zeros_(self.transform[-1].weight)  # type: ignore[arg-type]  # torch types submodule attributes as Tensor | Module
                nn.init.zeros_(self.transform[-1].bias)  # type: ignore[arg-type]
            self.register_buffer("base", base)  # (P, S*2*H_kv*D), fixed; zero = PEFT's form
            self.register_load_state_dict_pre_hook(_zero_base_if_missing)
        else:
            self.embedding = nn.Embedding(config.num_virtual_tokens, width)
            self.transform = nn.Identity()
            self.base = None
            if words:
                self.embedding.weight.data.copy_(word_prefix(config, ctx, width))
        self.dropout = nn.Dropout(config.dropout)

    def contribute(self) -> Contribution:
        flat = self.transform(self.embedding.weight)  # (P, S*2*H_kv*D)
        if self.base is not None:
            flat = self.base + flat
        flat = self.dropout(flat)
        kv = flat.view(flat.shape[0], *self.shape).permute(1, 2, 3, 0, 4)  # (S, 2, H_kv, P, D)
        return Contribution(kv=kv)

    def eject(self) -> Contribution:
        return eject_in_eval(self)


def _zero_base_if_missing(module, state_dict, prefix, *args) -> None:
    """Files written before the base prefix existed (and PEFT's form) hold no ``base``: it is zero there."""
    key = prefix + "base"
    if key not in state_dict and module.base is not None and prefix + "embedding.weight" in state_dict:
        state_dict[key] = torch.zeros_like(module.base)


def _peft_fields(adapter_config: dict) -> dict | None:
    """PEFT's prefix is the parameter itself without ``prefix_projection``; with it, the MLP's output."""
    return None if adapter_config.get("prefix_projection") else {"reparameterize": False, "dropout": 0.0}


def _load_peft(module: PrefixTuning, values: torch.Tensor) -> None:
    module.embedding.weight.copy_(values)  # (P, S*2*H_kv*D), PEFT's (P, L, 2, H_kv, D) layout = ours


METHOD = Method(
    config=PrefixTuningConfig,
    module=PrefixTuning,
    train={"lr": 1e-4},
    train_with_head={"head_lr": 3e-2},
    load_fields=LOAD_FIELDS,
    peft=PeftMapping(peft_type="PREFIX_TUNING", fields=_peft_fields, load=_load_peft),
)
"""Training: lr 1e-4 from bench/results/lr_sweep-smollm2.md (SmolLM2-135M on Rotten Tomatoes, batch 8, 24 steps,
seed 0, 100 validation reviews): the MLP at 1e-5 / 1e-4 / 1e-3, 1e-4 best (0.58 -> 0.87; 1e-3 overshoots: 0.60,
training loss above 1e-4's). With a trained head it learned at no single rate on MiniLM-L6 (one class at every
rate from 1e-5 to 3e-2: its MLP wants ~1e-4, the new head far more), so it keeps 1e-4 for the prefix and trains
the head at ``head_lr`` 3e-2 (bench/results/lr_sweep-minilm.md, 100 steps, 200 validation reviews, majority
0.510: prefix / head 1e-4 / 3e-2 0.740, 1e-4 / 1e-2 0.735, 3e-4 / 3e-2 0.725, 1e-5 / 3e-2 0.695, 1e-3 / 3e-2
one class). It does not start from a template's lead-in (its MLP starts from real words itself)."""
