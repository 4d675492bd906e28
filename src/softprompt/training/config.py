"""``TrainConfig``: every knob of the training loop, checked when built (a YAML typo fails before any work)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from softprompt.errors import ConfigError, check_choice, check_range

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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
    def for_method(cls, method: str, *, trained_head: bool = False, **fields: Any) -> TrainConfig:
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


def check_types(obj: DataclassInstance) -> None:
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
