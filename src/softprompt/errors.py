"""Exceptions a user can act on. Each names the offending value and what is accepted."""

from __future__ import annotations

import numbers


class SoftPromptError(Exception):
    """Base class of every error softprompt raises on purpose."""


class ConfigError(SoftPromptError, ValueError):
    """A config field holds a value outside its accepted range."""


class TemplateError(SoftPromptError, ValueError):
    """A hard-prompt template does not parse, or does not fit the model / example."""


class VerbalizerError(SoftPromptError, ValueError):
    """A label is missing from the verbalizer, or a label word cannot be tokenized."""


class InputTooLong(SoftPromptError, ValueError):
    """Input plus virtual tokens exceed the backbone's positions."""


class BackboneMismatch(SoftPromptError, ValueError):
    """A prompt was trained for another backbone than the one it is loaded onto."""


class PromptFileError(SoftPromptError, OSError):
    """A prompt/checkpoint file is missing, corrupt or truncated."""


class UnsupportedModel(SoftPromptError, ValueError):
    """The backbone's family or attention implementation is not supported."""


class DataError(SoftPromptError, ValueError):
    """A dataset file or field mapping is unusable."""


def check_range(name: str, value, *, low=None, high=None, low_open: bool = False) -> None:
    """Raise ConfigError naming ``name`` when ``value`` is outside [low, high] (or (low, high]), is NaN or infinite, or is
    not a number at all (a ``null`` or a string read from a file must not reach a comparison)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}={value!r} has type {type(value).__name__}; expected a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={value!r} is not a finite number; accepted: {low}..{high}")
    bad = (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and value > high
    )
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name}={value!r} is out of range; accepted: {bracket}{lo}, {hi}]")


def check_choice(name: str, value, choices) -> None:
    """Raise ConfigError naming ``name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not accepted; choose one of: {', '.join(map(str, choices))}")
