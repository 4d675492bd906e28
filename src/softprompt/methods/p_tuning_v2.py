"""P-Tuning v2: deep prompts (a prefix at every layer) for understanding tasks, no reparameterization by
default. Pair it with a task head from ``softprompt.tasks.layers`` (pooled / last-token / verbalizer / token)."""

from __future__ import annotations

from dataclasses import dataclass

from softprompt.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig


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
