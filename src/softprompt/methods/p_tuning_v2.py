"""P-Tuning v2: deep prompts (a prefix at every layer) for understanding tasks, no reparameterization by
default. Pair it with a task head from ``softprompt.tasks.layers`` (pooled / last-token / verbalizer / token)."""

from __future__ import annotations

from dataclasses import dataclass

from softprompt.core.prompt import Method, PeftMapping
from softprompt.methods.prefix_tuning import LOAD_FIELDS, PrefixTuning, PrefixTuningConfig


@dataclass(kw_only=True)
class PTuningV2Config(PrefixTuningConfig):
    """Deep prompts: no reparameterization (as the paper), started from the frozen model's own keys/values for
    real words (init="words"; "random" is the N(0, 1) start), no dropout on the prefix (the paper's 0.1 took
    SmolLM2 from 0.60 to 0.53 in 24 steps where 0.0 reached 0.71: bench/results/lr_sweep-smollm2.md)."""

    method: str = "p-tuning-v2"
    num_virtual_tokens: int = 16
    reparameterize: bool = False
    dropout: float = 0.0


class PTuningV2(PrefixTuning):
    """Same mechanism as prefix tuning; only the defaults and the usual heads differ."""


METHOD = Method(
    config=PTuningV2Config,
    module=PTuningV2,
    train={"lr": 1e-3},
    train_with_head={"lr": 3e-2},
    text_start_lr=lambda given: None if given.get("reparameterize", False) else 1e-3,
    load_fields=LOAD_FIELDS,
    peft=PeftMapping(),  # exported as PREFIX_TUNING; PEFT's PREFIX_TUNING files import as prefix-tuning
)
"""Training: lr 1e-3 from bench/results/lr_sweep-smollm2.md (SmolLM2-135M on Rotten Tomatoes, batch 8, 24 steps,
seed 0, no dropout): 0.60 -> 0.71 (other rates unfinished), and the demo's 0.815 held-out at 1e-3 (README). With
a trained head (MiniLM-L6, a bare encoder, bench/results/lr_sweep-minilm.md, 100 steps, 200 validation reviews,
majority 0.510): 3e-2 (0.750; 1e-2 0.735; 1e-3 0.495); ``softprompt train --model minilm-l6 --method p-tuning-v2
--dataset rotten-tomatoes`` (200 steps, mean head) gives 0.535 on 200 validation / 0.569 on the 1,298 test
reviews at 1e-3, 0.795 / 0.762 with ``--lr 3e-2``; the paper's rates for deep prompts + a linear head are
5e-3..6e-2 too. Started from a chosen template's lead-in words (without reparameterization): 1e-3."""
