"""The optimizer and learning-rate schedule of the training loop: AdamW over the prompts (at ``lr``) and the
task heads (at ``head_lr`` when set), warmed up and decayed by one transformers scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from softprompt.training.config import TrainConfig

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LRScheduler


def param_groups(modules: dict[str, nn.Module], config: TrainConfig) -> list[dict]:
    """AdamW's parameter groups: the prompts at ``lr``; the task heads at ``head_lr`` when it is set (one
    group otherwise, so a run without ``head_lr`` keeps its checkpoint layout). Each parameter once."""
    seen: set[int] = set()
    prompts: list[nn.Parameter] = []
    heads: list[nn.Parameter] = []
    for key, m in modules.items():
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                (heads if key.startswith("head.") else prompts).append(p)
    if config.head_lr is None or not heads:
        return [{"params": prompts + heads}] if prompts or heads else []
    return [g for g in ({"params": prompts}, {"params": heads, "lr": config.head_lr}) if g["params"]]


def optimizer(groups: list[dict], config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def scheduler(opt: torch.optim.Optimizer, config: TrainConfig) -> LRScheduler:
    """Linear warm-up over ``warmup_ratio`` of the steps, then ``config.scheduler``'s decay (every group alike)."""
    from transformers import get_scheduler

    warmup = round(config.warmup_ratio * config.steps)
    name = "constant_with_warmup" if config.scheduler == "constant" else config.scheduler
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=config.steps)
