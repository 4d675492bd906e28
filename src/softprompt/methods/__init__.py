"""The method table. Adding a method = one file + one row here; nothing else changes."""

from __future__ import annotations

import dataclasses
from typing import Any

from softprompt.core.prompt import (
    METHODS,
    Contribution,
    InitContext,
    MethodConfig,
    PromptMethod,
    build,
    register,
)
from softprompt.errors import ConfigError
from softprompt.methods.hard import HardConfig, HardPrompt
from softprompt.methods.p_tuning import PTuning, PTuningConfig
from softprompt.methods.p_tuning_v2 import PTuningV2, PTuningV2Config
from softprompt.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt.methods.static import StaticConfig, StaticPrompt

register("hard", HardConfig, HardPrompt)
register("prompt-tuning", PromptTuningConfig, PromptTuning)
register("p-tuning", PTuningConfig, PTuning)
register("prefix-tuning", PrefixTuningConfig, PrefixTuning)
register("p-tuning-v2", PTuningV2Config, PTuningV2)
register("static", StaticConfig, StaticPrompt)
TRAINABLE = tuple(m for m in METHODS if m != "static")


def make_config(method: str, **fields: Any) -> MethodConfig:
    """A checked config for ``method``; unknown fields are rejected by name."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(TRAINABLE)}")
    cls = METHODS[method][0]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(
            f"{method}: unknown field(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(known - {'method'}))}"
        )
    fields.pop("method", None)
    return cls(**fields)


__all__ = [
    "METHODS",
    "TRAINABLE",
    "Contribution",
    "InitContext",
    "MethodConfig",
    "PromptMethod",
    "build",
    "make_config",
]
