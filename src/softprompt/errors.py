"""Exceptions a user can act on. Each names the offending value and what is accepted.

Also the checks that raise them for typed inputs: :func:`check_fields` (a config dataclass whose fields declare
their bounds and choices) and :func:`check_value` (one argument), pydantic doing the validation.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from collections.abc import Collection
from typing import Annotated, cast

from annotated_types import Ge


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


def check_range(
    name: str, value: object, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> None:
    """Raise ConfigError naming ``name`` when ``value`` is outside [low, high] (or (low, high]), is NaN or infinite, or is
    not a number at all (a ``null`` or a string read from a file must not reach a comparison)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}={value!r} has type {type(value).__name__}; expected a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={value!r} is not a finite number; accepted: {low}..{high}")
    num = cast(float, value)  # a Real: compares with the float bounds
    bad = (low is not None and (num <= low if low_open else num < low)) or (high is not None and num > high)
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name}={value!r} is out of range; accepted: {bracket}{lo}, {hi}]")


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    """Raise ConfigError naming ``name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not accepted; choose one of: {', '.join(map(str, choices))}")


# ----- typed fields: constraints declared on the annotation, checked by pydantic ---------------------------------
Positive = Annotated[int, Ge(1)]
"""An int >= 1 (a count, a number of steps); bounds of other fields are written on them: ``Field(ge=.., le=..)``."""
NonNegative = Annotated[int, Ge(0)]
"""An int >= 0."""
_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def check_fields(obj: object) -> None:
    """Check every field of dataclass ``obj`` against its annotation, with pydantic (in ``__post_init__``).

    Fields declare what they accept: a type (strict: a bool is not an int, a string is not a number; an int given
    for a float becomes a float), ``Literal[...]`` choices, bounds as ``Annotated[int, Field(ge=1, le=4096)]``.
    The first failure is a ConfigError naming the field, its value and what is accepted (:func:`field_error`).
    """
    from pydantic import ValidationError

    for name, hint, adapter in _adapters(type(obj)):
        value = getattr(obj, name)
        if type(value) is int and float in _accepts(hint, int)[0]:
            value = float(value)
            setattr(obj, name, value)
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as e:  # pydantic's error, as ours
            raise field_error(name, value, hint, e) from None


def check_value(name: str, value: typing.Any, hint: typing.Any) -> typing.Any:
    """``value`` checked against ``hint`` (as :func:`check_fields` checks a field); returns the checked value.

    ``hint`` is a module-level alias or built from hashable parts (``annotated_types.Interval``): its pydantic
    validator is built once and cached by ``hint``.
    """
    from pydantic import ValidationError

    try:
        return _adapter(hint).validate_python(value, strict=True)
    except ValidationError as e:
        raise field_error(name, value, hint, e) from None


def field_error(name: str, value: object, hint: object, error: typing.Any) -> ConfigError:
    """pydantic's ValidationError for field ``name`` as our ConfigError: value, and what ``hint`` accepts."""
    errors = error.errors()
    kinds = {e["type"] for e in errors}
    accepted, choices, bounds = _accepts(hint, type(value))
    if "literal_error" in kinds and choices:
        return ConfigError(f"{name}={value!r} is not accepted; choose one of: {', '.join(map(str, choices))}")
    if kinds & _RANGE and bounds:
        lo, lo_open, hi, hi_open = bounds
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        return ConfigError(f"{name}={value!r} is out of range; accepted: {interval}")
    if all(k.endswith("_type") or k == "is_instance_of" for k in kinds):
        names = " or ".join(
            sorted({"null" if t is type(None) else getattr(t, "__name__", str(t)) for t in accepted})
        )
        return ConfigError(f"{name}={value!r} has type {type(value).__name__}; expected {names}")
    why = "; ".join(e["msg"] for e in errors) or str(error)
    return ConfigError(f"{name}={value!r} is not accepted: {why}")


def _accepts(hint: typing.Any, like: type) -> tuple[list, list, tuple | None]:
    """(plain types, Literal choices, bounds (lo, lo_open, hi, hi_open) of the part of ``hint`` for ``like``)."""
    from annotated_types import GroupedMetadata, Gt, Le, Lt

    args, origin = typing.get_args(hint), typing.get_origin(hint)
    if origin is typing.Annotated:
        plain, choices, _ = _accepts(args[0], like)
        lo: object = None  # a bound of any comparable type (int, float, ...), or None: unbounded
        hi: object = None
        lo_open = hi_open = False
        for meta in args[1:]:
            parts = meta if isinstance(meta, GroupedMetadata) else getattr(meta, "metadata", [meta])
            for m in parts:
                if isinstance(m, (Ge, Gt)):
                    lo, lo_open = (m.ge, False) if isinstance(m, Ge) else (m.gt, True)
                elif isinstance(m, (Le, Lt)):
                    hi, hi_open = (m.le, False) if isinstance(m, Le) else (m.lt, True)
        bounds: tuple | None = ("-inf" if lo is None else lo, lo_open, "inf" if hi is None else hi, hi_open)
        return plain, choices, bounds if (lo, hi) != (None, None) else None
    if origin is typing.Literal:
        return sorted({type(a) for a in args}, key=str), list(args), None
    if origin in (typing.Union, types.UnionType):
        parts = [_accepts(a, like) for a in args]
        plain = [t for p in parts for t in p[0]]
        choices = [c for p in parts for c in p[1]]
        bounds = next((p[2] for p in parts if p[2] and like in p[0]), None)
        return plain, choices, bounds or next((p[2] for p in parts if p[2]), None)
    return [origin or hint], [], None


def _adapters(cls: type) -> list:
    """(name, hint, TypeAdapter) of each dataclass field of ``cls`` (built once per class)."""
    hit = _ADAPTERS.get(cls)
    if hit is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        hit = _ADAPTERS[cls] = [
            (f.name, hints[f.name], _adapter(hints[f.name])) for f in dataclasses.fields(cls)
        ]
    return hit


@functools.lru_cache(maxsize=512)
def _adapter(hint: typing.Any) -> typing.Any:
    from pydantic import ConfigDict, TypeAdapter
    from pydantic.errors import PydanticUserError

    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except PydanticUserError:  # a model or dataclass with its own config
        return TypeAdapter(hint)


_ADAPTERS: dict[type, list] = {}
