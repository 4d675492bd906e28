"""The ``Accelerator`` a run trains with: hardware checks, and CPU ranks under torchrun."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from softprompt.core import compat
from softprompt.errors import ConfigError
from softprompt.training.config import TrainConfig
from softprompt.training.sharding import check_launch

if TYPE_CHECKING:
    from accelerate import Accelerator


def _has_gpu() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def check_hardware(config: TrainConfig) -> None:
    """Refuse what this machine cannot do (fp16 autocast needs a GPU)."""
    if config.mixed_precision == "fp16" and not _has_gpu():
        raise ConfigError("mixed_precision='fp16' needs a GPU, and this machine has none; use 'bf16' or 'no'")


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An ``Accelerator`` for ``config``."""
    from accelerate import Accelerator

    check_hardware(config)
    check_launch()
    gpu = _has_gpu()
    compat.reset_accelerate_state(config.mixed_precision)  # a process may train again with another precision
    # cpu=True on machines without a GPU: only then does accelerate turn torchrun's ranks into gloo processes
    return Accelerator(
        mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum, cpu=not gpu
    )
