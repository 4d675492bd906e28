"""P-Tuning v1 ("GPT Understands, Too"): virtual tokens anywhere in a template, produced by a prompt encoder.

Raw embeddings (P, H) pass through a bi-LSTM + MLP (or an MLP) once per forward; the result is the same for
every row, so the batch is served by broadcasting (no per-example loop). Module names follow PEFT's
``PromptEncoder`` so its checkpoints map one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from softprompt.core.prompt import Contribution, InitContext, Method, PeftMapping, eject_in_eval, seeded_init
from softprompt.errors import check_choice, check_range
from softprompt.methods.prompt_tuning import LOAD_FIELDS, PromptTuningConfig, initial_embeddings

ENCODERS = ("lstm", "mlp", "none")


@dataclass(kw_only=True)
class PTuningConfig(PromptTuningConfig):
    """P-tuning: prompt-tuning's init options plus the prompt encoder."""

    method: str = "p-tuning"
    num_virtual_tokens: int = 10
    encoder: Literal["lstm", "mlp", "none"] = "lstm"
    """Reparameterization: bi-LSTM + MLP (the paper), a 3-layer MLP, or none."""
    encoder_hidden: int | None = None
    """Width of the encoder; None = the backbone's hidden size."""
    encoder_layers: int = 2
    """LSTM layers; 1..8."""
    dropout: float = 0.0
    """Dropout inside the encoder; 0..0.9."""
    residual: bool = False
    """Add the encoder's output to the raw embeddings, its last layer zero-initialized, so training starts
    exactly at the initial words (False = the paper's and PEFT's encoder)."""

    def __post_init__(self):
        super().__post_init__()
        check_choice("encoder", self.encoder, ENCODERS)
        check_range("encoder_layers", self.encoder_layers, low=1, high=8)
        check_range("dropout", self.dropout, low=0.0, high=0.9)
        if self.encoder_hidden is not None:
            check_range("encoder_hidden", self.encoder_hidden, low=1)


class PTuning(nn.Module):
    @seeded_init  # the encoder's weights drawn from ctx.seed without touching the global RNG
    def __init__(self, config: PTuningConfig, ctx: InitContext):
        super().__init__()
        self.config = config
        h, w = ctx.info.hidden_size, config.encoder_hidden or ctx.info.hidden_size
        self.embedding = nn.Embedding(config.num_virtual_tokens, h)
        self.embedding.weight.data.copy_(initial_embeddings(config, ctx))
        self.lstm_head = None
        if config.encoder == "lstm":
            self.lstm_head = nn.LSTM(
                h,
                w,
                num_layers=config.encoder_layers,
                dropout=config.dropout,
                bidirectional=True,
                batch_first=True,
            )
            self.mlp_head: nn.Module = nn.Sequential(nn.Linear(2 * w, 2 * w), nn.ReLU(), nn.Linear(2 * w, h))
        elif config.encoder == "mlp":
            self.mlp_head = nn.Sequential(
                nn.Linear(h, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, h)
            )
        else:
            self.mlp_head = nn.Identity()
        if config.residual and config.encoder != "none":
            nn.init.zeros_(self.mlp_head[-1].weight)  # type: ignore[index, arg-type]  # a Sequential here; torch types submodule attributes as Tensor | Module
            nn.init.zeros_(self.mlp_head[-1].bias)  # type: ignore[index, arg-type]

    def contribute(self) -> Contribution:
        x = self.embedding.weight[None]  # (1, P, H)
        if self.lstm_head is not None:
            # The LSTM runs in its parameters' float32 even under bf16 autocast: oneDNN has no bf16 LSTM on CPUs
            # without AVX-512 BF16 ("could not create a primitive descriptor"), and the encoder is tiny.
            with torch.autocast(x.device.type, enabled=False):
                x = self.lstm_head(x)[0]  # (1, P, 2W)
        out = self.mlp_head(x)[0]  # (P, H)
        return Contribution(embeds=out + self.embedding.weight if self.config.residual else out)

    def eject(self) -> Contribution:
        return eject_in_eval(self)


METHOD = Method(
    config=PTuningConfig,
    module=PTuning,
    train={"lr": 3e-4},
    train_with_head={"lr": 3e-2},
    text_start_lr=lambda given: 1e-3,
    load_fields=LOAD_FIELDS,
    peft=PeftMapping(
        peft_type="P_TUNING"
    ),  # PEFT saves the encoder's output only: it loads as the ejected form
)
"""Training: lr 3e-4 from bench/results/lr_sweep-smollm2.md (SmolLM2-135M on Rotten Tomatoes, batch 8, 24 steps,
seed 0, 100 validation reviews): the bi-LSTM at 1e-4 / 3e-4 / 1e-3 / 3e-3 / 1e-2 gives 0.68 -> 0.73 / 0.74 /
0.65 / 0.66 / 0.50 (one class); 3e-4 best, 1e-3 and up fall below the start (was 1e-3, from the demo's 0.840
held-out after 48 steps). With a trained head (MiniLM-L6, bench/results/lr_sweep-minilm.md): 3e-2 (1e-2..3e-2
give 0.695 / 0.705; 1e-3 0.540). Started from a chosen template's lead-in words: 1e-3 (the demo's)."""
