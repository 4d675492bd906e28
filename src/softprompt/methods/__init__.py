"""The method table. Adding a method = one file + one row here; nothing else changes."""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .base import Contribution, InitContext, MethodConfig, PromptMethod
from .hard import HardConfig, HardPrompt
from .p_tuning import PTuning, PTuningConfig
from .p_tuning_v2 import PTuningV2, PTuningV2Config
from .prefix_tuning import PrefixTuning, PrefixTuningConfig
from .prompt_tuning import PromptTuning, PromptTuningConfig
from .static import StaticConfig, StaticPrompt

METHODS: dict[str, tuple[type[MethodConfig], type]] = {
    "hard": (HardConfig, HardPrompt),
    "prompt-tuning": (PromptTuningConfig, PromptTuning),
    "p-tuning": (PTuningConfig, PTuning),
    "prefix-tuning": (PrefixTuningConfig, PrefixTuning),
    "p-tuning-v2": (PTuningV2Config, PTuningV2),
    "static": (StaticConfig, StaticPrompt),
}
TRAINABLE = tuple(m for m in METHODS if m != "static")


def make_config(method: str, **fields) -> MethodConfig:
    """A checked config for ``method``; unknown fields are rejected by name."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(TRAINABLE)}")
    cls = METHODS[method][0]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{method}: unknown field(s) {', '.join(unknown)}; accepted: "
                          f"{', '.join(sorted(known - {'method'}))}")
    fields.pop("method", None)
    return cls(**fields)


def build(config: MethodConfig, ctx: InitContext):
    """Instantiate the module of ``config.method``."""
    return METHODS[config.method][1](config, ctx)


__all__ = ["METHODS", "TRAINABLE", "Contribution", "InitContext", "MethodConfig", "PromptMethod",
           "build", "make_config"]
