"""``TrainConfig``: every knob of the training loop, checked when built (a YAML typo fails before any work)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from softprompt.errors import check_fields

Scheduler = Literal["linear", "cosine", "constant"]
Precision = Literal["no", "bf16", "fp16"]


@dataclass(kw_only=True)
class TrainConfig:
    """How to train prompts (the same for every method)."""

    steps: Annotated[int, Field(ge=1, le=10_000_000)] = 200
    """Optimizer steps; 1..10,000,000."""
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 8
    """Global batch: examples per micro-step over all processes (each of N processes takes batch_size / N,
    so N must divide it); 1..65,536."""
    grad_accum: Annotated[int, Field(ge=1, le=1024)] = 1
    """Micro-steps accumulated into one optimizer step (examples per step = batch_size x grad_accum); 1..1024."""
    lr: Annotated[float, Field(gt=0, le=10)] = 3e-2
    """Peak learning rate of AdamW; (0, 10]."""
    head_lr: Annotated[float, Field(gt=0, le=10)] | None = None
    """Peak learning rate of a task's new head (a bare encoder's pooled or token head), which starts from
    scratch while the prompt starts from real words; None = ``lr``; (0, 10]."""
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0
    """AdamW decoupled weight decay; 0..1."""
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = 0.06
    """Share of the steps spent warming the learning rate up linearly from 0 (every scheduler); 0..1."""
    scheduler: Scheduler = "linear"
    """Learning-rate decay after warmup: linear to 0, cosine to 0, or constant."""
    max_grad_norm: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    """Clip the global gradient norm to this; 0 = no clipping; 0..1e6."""
    eval_every: Annotated[int, Field(ge=0)] = 50
    """Evaluate on validation every N steps (and always at the end); 0 = only at the end."""
    eval_examples: Annotated[int, Field(ge=1)] | None = 200
    """Validation examples scored per evaluation (the first N); None = all; >= 1."""
    eval_batch_size: Annotated[int, Field(ge=1, le=65_536)] = 16
    """Examples per evaluation batch (over all processes); 1..65,536."""
    patience: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many evaluations without a new best main metric; None = never stop early; >= 1."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    """Seed of the prompt initialization, data order and dropout; 0..2**32-1."""
    mixed_precision: Precision = "no"
    """Autocast precision: "bf16" (CPU and recent GPUs) or "fp16" (GPUs only); parameters stay float32."""
    gradient_checkpointing: bool = False
    """Recompute backbone activations in the backward pass (less memory, ~30 % slower)."""
    save_every: Annotated[int, Field(ge=0)] = 50
    """Write a resumable checkpoint every N steps (and always at the end); 0 = only at the end."""
    log_every: Annotated[int, Field(ge=1)] = 10
    """Log loss, learning rate and speed to log.jsonl every N steps; >= 1."""

    def __post_init__(self):
        check_fields(self)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_method(cls, method: str, *, trained_head: bool = False, **fields) -> TrainConfig:
        """A config with ``method``'s measured defaults under ``fields``: :data:`METHOD_DEFAULTS`, with
        :data:`HEAD_DEFAULTS` on top when the task trains a new head (a bare encoder's pooled or token head)."""
        head = HEAD_DEFAULTS.get(method, {}) if trained_head else {}
        return cls(**{**METHOD_DEFAULTS.get(method, {}), **head, **fields})


METHOD_DEFAULTS: dict[str, dict] = {
    "prompt-tuning": {"lr": 1e-1, "warmup_ratio": 0.06, "steps": 200},
    "p-tuning": {"lr": 3e-4, "warmup_ratio": 0.06, "steps": 200},
    "prefix-tuning": {"lr": 1e-4, "warmup_ratio": 0.06, "steps": 200},
    "p-tuning-v2": {"lr": 1e-3, "warmup_ratio": 0.06, "steps": 200},
}
"""Per method, the training settings ``softprompt train --method M`` and ``TrainConfig.for_method`` start from
(flags win). All from bench/results/lr_sweep-smollm2.md: SmolLM2-135M on Rotten Tomatoes, batch 8, 24 steps,
seed 0, each method's default init, accuracy on 100 validation reviews (about +-5 points of noise). Prefix tuning (the MLP):
1e-5 / 1e-4 / 1e-3, 1e-4 best (0.58 -> 0.87; 1e-3 overshoots: 0.60, training loss above 1e-4's). P-tuning v2
(no dropout): 1e-3 there, 0.60 -> 0.71 (other rates unfinished), and the demo's 0.815 held-out at 1e-3 (README).
Prompt tuning: 3e-3 / 1e-2 / 3e-2 / 1e-1 / 3e-1 give 0.68 -> 0.78 / 0.74 / 0.75 / 0.84 / 0.80; 1e-1 best and
3e-1 does not overshoot (was 1e-2, from the 2026-11-25 quality run). P-tuning (bi-LSTM): 1e-4 / 3e-4 / 1e-3 /
3e-3 / 1e-2 give 0.68 -> 0.73 / 0.74 / 0.65 / 0.66 / 0.50 (one class); 3e-4 best, 1e-3 and up fall below the
start (was 1e-3, from the demo's 0.840 held-out after 48 steps). Warm-up and steps keep the loop's defaults (not swept).

They are SmolLM2's. On MiniLM-L6 (a bare encoder: a new mean-pooled head trains at the prompt's rate),
bench/results/lr_sweep-minilm.md, 100 steps, 200 validation reviews (majority 0.510), one seed, learned at
higher rates: P-tuning v2 3e-2 (0.750; 1e-2 0.735; its default 1e-3 0.495), P-tuning 1e-2..3e-2 (0.695 / 0.705;
1e-3 0.540), prompt tuning at 1e-2 (0.720, its default then); prefix tuning predicted one class at every rate from
1e-5 to 3e-2. ``softprompt train --model minilm-l6 --method p-tuning-v2 --dataset rotten-tomatoes`` (200 steps,
mean head): accuracy 0.535 on 200 validation / 0.569 on the 1,298 test reviews at 1e-3, 0.795 / 0.762 with
``--lr 3e-2``; hence :data:`HEAD_DEFAULTS`."""

HEAD_DEFAULTS: dict[str, dict] = {
    "prompt-tuning": {"lr": 1e-2},
    "p-tuning-v2": {"lr": 3e-2},
    "p-tuning": {"lr": 3e-2},
    "prefix-tuning": {"head_lr": 3e-2},
}
"""Where a task trains a new head with the prompt (a bare encoder: pooled classification or token labeling),
these replace :data:`METHOD_DEFAULTS`' rates: measured on MiniLM-L6 (bench/results/lr_sweep-minilm.md, above);
the P-tuning v2 paper's rates for its deep prompts + linear head are 5e-3..6e-2 too. Prompt tuning: 1e-2
(best there). Prefix tuning learned at no single rate on MiniLM (its MLP wants ~1e-4, the new head far more):
it keeps SmolLM2's 1e-4 for the prefix and trains the head at ``head_lr`` 3e-2 (100 steps, 200 validation
reviews, majority 0.510: prefix / head 1e-4 / 3e-2 0.740, 1e-4 / 1e-2 0.735, 3e-4 / 3e-2 0.725, 1e-5 / 3e-2
0.695, 1e-3 / 3e-2 one class; lr_sweep-minilm.md)."""
