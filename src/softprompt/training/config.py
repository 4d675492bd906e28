"""``TrainConfig``: every knob of the training loop, checked when built (a YAML typo fails before any work)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Literal

from softprompt.errors import ConfigError, check_choice, check_range

SCHEDULERS = ("linear", "cosine", "constant")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass(kw_only=True)
class TrainConfig:
    """How to train prompts (the same for every method)."""

    steps: int = 200
    """Optimizer steps; 1..10,000,000."""
    batch_size: int = 8
    """Global batch: examples per micro-step over all processes (each of N processes takes batch_size / N,
    so N must divide it); 1..65,536."""
    grad_accum: int = 1
    """Micro-steps accumulated into one optimizer step (examples per step = batch_size x grad_accum); 1..1024."""
    lr: float = 3e-2
    """Peak learning rate of AdamW; (0, 10]."""
    head_lr: float | None = None
    """Peak learning rate of a task's new head (a bare encoder's pooled or token head), which starts from
    scratch while the prompt starts from real words; None = ``lr``; (0, 10]."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay; 0..1."""
    warmup_ratio: float = 0.06
    """Share of the steps spent warming the learning rate up linearly from 0 (every scheduler); 0..1."""
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    """Learning-rate decay after warmup: linear to 0, cosine to 0, or constant."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this; 0 = no clipping; 0..1e6."""
    eval_every: int = 50
    """Evaluate on validation every N steps (and always at the end); 0 = only at the end."""
    eval_examples: int | None = 200
    """Validation examples scored per evaluation (the first N); None = all; >= 1."""
    eval_batch_size: int = 16
    """Examples per evaluation batch (over all processes); 1..65,536."""
    patience: int | None = None
    """Stop after this many evaluations without a new best main metric; None = never stop early; >= 1."""
    seed: int = 0
    """Seed of the prompt initialization, data order and dropout; 0..2**32-1."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast precision: "bf16" (CPU and recent GPUs) or "fp16" (GPUs only); parameters stay float32."""
    gradient_checkpointing: bool = False
    """Recompute backbone activations in the backward pass (less memory, ~30 % slower)."""
    save_every: int = 50
    """Write a resumable checkpoint every N steps (and always at the end); 0 = only at the end."""
    log_every: int = 10
    """Log loss, learning rate and speed to log.jsonl every N steps; >= 1."""

    def __post_init__(self):
        check_types(self)
        check_range("steps", self.steps, low=1, high=10_000_000)
        check_range("batch_size", self.batch_size, low=1, high=65_536)
        check_range("grad_accum", self.grad_accum, low=1, high=1024)
        check_range("lr", self.lr, low=0, high=10, low_open=True)
        if self.head_lr is not None:
            check_range("head_lr", self.head_lr, low=0, high=10, low_open=True)
        check_range("weight_decay", self.weight_decay, low=0, high=1)
        check_range("warmup_ratio", self.warmup_ratio, low=0, high=1)
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        check_range("max_grad_norm", self.max_grad_norm, low=0, high=1e6)
        check_range("eval_every", self.eval_every, low=0)
        if self.eval_examples is not None:
            check_range("eval_examples", self.eval_examples, low=1)
        check_range("eval_batch_size", self.eval_batch_size, low=1, high=65_536)
        if self.patience is not None:
            check_range("patience", self.patience, low=1)
        check_range("seed", self.seed, low=0, high=2**32 - 1)
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_range("save_every", self.save_every, low=0)
        check_range("log_every", self.log_every, low=1)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_method(cls, method: str, *, trained_head: bool = False, **fields) -> TrainConfig:
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


def check_types(obj) -> None:
    """Raise ConfigError naming the field whose value has the wrong type (ints given for floats are converted)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        expected = _accepted(hints[f.name])
        if float in expected and type(value) is int:
            setattr(obj, f.name, float(value))
        elif not any(_is(value, t) for t in expected):
            names = " or ".join(
                sorted({"null" if t is type(None) else getattr(t, "__name__", str(t)) for t in expected})
            )
            raise ConfigError(f"{f.name}={value!r} has type {type(value).__name__}; expected {names}")


def _accepted(hint) -> tuple:
    """Plain types a hint accepts (Literal values are checked by value, not here)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return tuple({type(a) for a in typing.get_args(hint)})
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(hint) for t in _accepted(a))
    return (hint,)


def _is(value, t) -> bool:
    if t is int:
        return type(value) is int  # bool is not an int here
    return isinstance(value, t)
