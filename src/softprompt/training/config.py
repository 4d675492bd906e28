"""``TrainConfig``: every knob of the training loop, checked when built (a YAML typo fails before any work)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from softprompt.errors import ConfigError, check_fields

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
    def for_method(cls, method: str, *, trained_head: bool = False, **fields: Any) -> TrainConfig:
        """A config with ``method``'s measured defaults under ``fields``: its registered ``Method.train``, with
        ``train_with_head`` on top when the task trains a new head (a bare encoder's pooled or token head)."""
        from softprompt.methods import METHODS

        spec = METHODS.get(method)
        defaults = spec.train_defaults(trained_head) if spec else {}
        unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(
                f"method {method!r}: training default(s) {', '.join(unknown)} are not TrainConfig fields"
            )
        return cls(**{**defaults, **fields})
