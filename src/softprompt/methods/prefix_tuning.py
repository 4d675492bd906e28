"""Prefix-Tuning (Li & Liang 2021): trainable key/value prefixes in every attention layer.

Training form: a (P, H_kv*D) embedding (PEFT's width; ``embed_dim`` overrides) -> Linear -> Tanh -> Linear MLP producing every slot's keys and values (on
encoder-decoders: encoder self-attention, decoder self-attention and cross-attention, each its own slots).
``eject`` runs the MLP once and keeps only the (S, 2, H_kv, P, D) tensor. Without reparameterization the
prefix itself is the parameter (that is P-tuning v2's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch  # noqa: F401
from torch import nn

from softprompt.core.prompt import Contribution, InitContext, MethodConfig, eject_in_eval, seeded_init
from softprompt.errors import ConfigError, check_choice, check_range
from softprompt.methods.init import fill_to, text_ids


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
    init: Literal["random", "text"] = "random"
    """random: N(0, 1) embedding (as PEFT); text: the frozen model's own keys/values for init_text's tokens
    (Li & Liang's "real words' activations"; only without reparameterization)."""
    init_text: str | None = None
    """Words for init="text" (cycled to num_virtual_tokens)."""

    def __post_init__(self):
        check_range("num_virtual_tokens", self.num_virtual_tokens, low=1, high=4096)
        check_choice("init", self.init, ("random", "text"))
        if self.init == "text" and (not self.init_text or self.reparameterize):
            raise ConfigError(
                'init="text" needs init_text and reparameterize=False (the MLP cannot start '
                "from given activations)"
            )
        check_range("mlp_hidden", self.mlp_hidden, low=1, high=65536)
        if self.embed_dim is not None:
            check_range("embed_dim", self.embed_dim, low=1, high=65536)
        check_range("dropout", self.dropout, low=0.0, high=0.9)


class PrefixTuning(nn.Module):
    @seeded_init  # parameters drawn from ctx.seed without touching the global RNG
    def __init__(self, config: PrefixTuningConfig, ctx: InitContext):
        super().__init__()
        self.config = config
        info = ctx.info
        self.shape = (len(info.slots), 2, info.num_kv_heads, info.head_dim)  # (S, 2, H_kv, D)
        width = len(info.slots) * 2 * info.num_kv_heads * info.head_dim
        if config.reparameterize:
            d = config.embed_dim or info.num_kv_heads * info.head_dim
            self.embedding = nn.Embedding(config.num_virtual_tokens, d)
            self.transform = nn.Sequential(
                nn.Linear(d, config.mlp_hidden), nn.Tanh(), nn.Linear(config.mlp_hidden, width)
            )
        else:
            self.embedding = nn.Embedding(config.num_virtual_tokens, width)
            self.transform = nn.Identity()
            if config.init == "text":
                ids = fill_to(text_ids(ctx, config.init_text), config.num_virtual_tokens)
                kv = ctx.token_kv(ids)  # (S, 2, H_kv, P, D)
                self.embedding.weight.data.copy_(kv.permute(3, 0, 1, 2, 4).reshape(len(ids), width))
        self.dropout = nn.Dropout(config.dropout)

    def contribute(self) -> Contribution:
        flat = self.dropout(self.transform(self.embedding.weight))  # (P, S*2*H_kv*D)
        kv = flat.view(flat.shape[0], *self.shape).permute(1, 2, 3, 0, 4)  # (S, 2, H_kv, P, D)
        return Contribution(kv=kv)

    def eject(self) -> Contribution:
        return eject_in_eval(self)
