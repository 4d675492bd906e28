"""The methods. Adding one = one file that builds a :class:`Method` + one ``register`` line; nothing else changes
(a user's own method: ``softprompt.register(Method(...))`` in their own file)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from softprompt.core.prompt import (
    METHODS,
    Contribution,
    InitContext,
    Method,
    MethodConfig,
    PeftMapping,
    PromptMethod,
    build,
    register,
)
from softprompt.errors import ConfigError
from softprompt.methods import (
    adaption_prompt,
    hard,
    multitask_prompt_tuning,
    p_tuning,
    p_tuning_v2,
    prefix_tuning,
    prompt_tuning,
    static,
)

register(hard.METHOD)
register(prompt_tuning.METHOD)
register(p_tuning.METHOD)
register(prefix_tuning.METHOD)
register(p_tuning_v2.METHOD)
register(static.METHOD)
register(multitask_prompt_tuning.METHOD)
register(adaption_prompt.METHOD)


class _Listed(Sequence[str]):
    """The names of the methods chosen by name (every registered one but the ejected form), as registered;
    a live, read-only view of :data:`METHODS`."""

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, m in METHODS.items() if m.listed)

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


TRAINABLE: Sequence[str] = _Listed()
"""Names a user chooses a method by (``make_config``, ``--method``, ``softprompt methods``), hard included."""


def make_config(method: str, **fields: Any) -> MethodConfig:
    """A checked config for ``method``; unknown fields are rejected by name."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(TRAINABLE)}")
    cls = METHODS[method].config
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
    "Method",
    "MethodConfig",
    "PeftMapping",
    "PromptMethod",
    "build",
    "make_config",
    "register",
]
