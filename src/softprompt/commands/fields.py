"""Config dataclasses as command-line flags and YAML sections: one description (field, type, default, doc).

A field ``num_virtual_tokens: int`` becomes ``--num-virtual-tokens N``; a ``bool`` becomes
``--flag/--no-flag``; ``X | None`` accepts ``none``. Flags default to "not given" (``argparse.SUPPRESS``), so
only what the user typed overrides a YAML file.

Kept libraries do the work: help texts are the fields' attribute docstrings as read by docstring-parser (the
reader jsonargparse uses); a value from the command line or YAML is coerced and checked against the field's
type hint by pydantic (``3e-2`` from PyYAML, a string, becomes a float), and pydantic's structured error
becomes one ConfigError naming ``section.field``, the value and what is accepted. Only our own syntax stays
here: ``'a=x,y;b=z'`` mappings, ``none`` for an empty optional, and no ``True`` for a number.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ConfigDict

NONE_WORDS = ("none", "null")


@dataclass(frozen=True)
class Field:
    name: str
    hint: object
    default: object
    doc: str


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) of a dataclass and its bases."""
    return dict(_field_docs(cls))


def _field_docs(cls) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # docstring-parser reads one class: walk the bases, nearest wins
        docs.update(_own_docs(klass))
    return docs


@functools.cache  # `train --help` asks for each method's docs once per flag: read each class's source once
def _own_docs(klass) -> dict[str, str]:
    import docstring_parser

    if klass is object:
        return {}
    try:
        params = docstring_parser.parse_from_object(klass).params
    except (OSError, TypeError, SyntaxError, docstring_parser.ParseError):
        return {}  # no source (built in memory) or an unparsable class docstring: no help texts
    return {
        p.arg_name: " ".join(p.description.split())
        for p in params
        if p.args[:1] == ["attribute"] and p.description
    }


def fields_of(cls: type, skip: tuple[str, ...] = ()) -> list[Field]:
    """The dataclass's fields (name, type hint, default, attribute docstring), in order, less ``skip``."""
    return [f for f in _fields(cls) if f.name not in skip]


@functools.cache  # type hints are evaluated from strings (compile per field): once per class
def _fields(cls) -> tuple[Field, ...]:
    hints, docs = typing.get_type_hints(cls), _field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append(Field(f.name, hints[f.name], default, docs.get(f.name, "")))
    return tuple(out)


def _args(hint) -> tuple[list, bool]:
    """(the hint's non-None members, whether None is accepted)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return members, len(members) < len(typing.get_args(hint))
    return [hint], False


def _is_dict(base) -> bool:
    return base is dict or typing.get_origin(base) is dict


def parse_mapping(text: str) -> dict:
    """``'{"a": ["x"]}'`` (JSON) or ``'a=x,y;b=z'`` -> ``{"a": ["x", "y"], "b": ["z"]}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{text!r} is not valid JSON ({e})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{text!r} must be a JSON object")
        return value
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, words = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{part!r} is not 'key=value[,value...]'")
        out[key.strip()] = [w.strip() for w in words.split(",") if w.strip()]
    return out


def parse_pairs(text: str) -> dict[str, str]:
    """``'text=review,label=stars'`` (or JSON) -> ``{"text": "review", "label": "stars"}``."""
    if text.strip().startswith("{"):
        return {str(k): str(v) for k, v in parse_mapping(text).items()}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ConfigError(f"{part!r} is not 'ours=theirs' (e.g. text=review,label=stars)")
        out[key.strip()] = value.strip()
    return out


def prepare(hint: Any, value: object) -> object:
    """Our syntax before pydantic sees ``value``: ``none`` for an optional, ``a=x;b=y`` for a mapping."""
    members, optional = _args(hint)
    base = members[0]
    if isinstance(value, str) and optional and value.strip().lower() in NONE_WORDS:
        return None
    if isinstance(value, bool) and base in (int, float):
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError("bool_number", "a bool is not a number")
    if isinstance(value, str) and _is_dict(base):
        pairs = typing.get_args(base)[1:] == (str,)  # dict[str, str]: 'a=x,b=y'; else 'a=x,y;b=z'
        return parse_pairs(value) if pairs else parse_mapping(value)
    return value


def typed(hint: Any) -> Any:
    """``hint`` as pydantic validates it, with :func:`prepare` run first."""
    from pydantic import BeforeValidator

    return Annotated[hint, BeforeValidator(functools.partial(prepare, hint))]


PYDANTIC_CONFIG: ConfigDict = {
    "coerce_numbers_to_str": True,
    "extra": "forbid",
}  # a YAML 2024 is the name "2024"


@functools.cache
def _adapter(hint):
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(typed(hint), config=ConfigDict(**PYDANTIC_CONFIG))


def explain(where: str, error: Mapping[str, Any], hint: Any, value: object) -> str:
    """One pydantic error (``ValidationError.errors()[i]``) about ``value`` as our message naming ``where``."""
    base = _args(hint)[0][0]
    if error["type"] == "value_error":  # our parse_mapping / parse_pairs said what is wrong
        return f"{where}: {error['ctx']['error']}"
    if value is None:
        return f"{where} may not be empty"
    if typing.get_origin(base) is Literal:
        return (
            f"{where}={value!r} is not accepted; choose one of: {', '.join(map(str, typing.get_args(base)))}"
        )
    nested = error.get("input") is not value  # a bad item inside a mapping: name the whole type
    name = str(base).replace("typing.", "") if nested else getattr(base, "__name__", str(base))
    return f"{where}={value!r} is not a valid {name}"


def coerce(where: str, value: object, hint: Any) -> Any:
    """``value`` (from YAML or the command line) as ``hint`` requires; ConfigError naming ``where``."""
    from pydantic import ValidationError

    try:
        return _adapter(hint).validate_python(value)
    except ValidationError as e:
        raise ConfigError(explain(where, e.errors()[0], hint, value)) from None


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    fields: list[Field],
    section: str,
    *,
    help_suffix: Callable[[Field], str] | None = None,
) -> None:
    """One flag per field, dest ``section.field``, default "not given"."""
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        members, _ = _args(f.hint)
        default = f" (default: {f.default})" if help_suffix is None else help_suffix(f)
        doc = (f.doc or f.name).replace("%", "%%") + default
        if members[0] is bool:
            parser.add_argument(
                flag,
                dest=f"{section}.{f.name}",
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=doc,
            )
            continue
        metavar = (
            "{" + ",".join(map(str, typing.get_args(members[0]))) + "}"
            if typing.get_origin(members[0]) is Literal
            else f.name.upper()
        )
        parser.add_argument(
            flag,
            dest=f"{section}.{f.name}",
            default=argparse.SUPPRESS,
            metavar=metavar,
            type=_flag_type(flag, f.hint),
            help=doc,
        )


def _flag_type(flag: str, hint):
    def parse(text: str):
        try:
            return coerce(flag, text, hint)
        except ConfigError as e:  # argparse reports ArgumentTypeError's message as is
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def given(args: argparse.Namespace, section: str) -> dict:
    """The flags of ``section`` the user typed, as {field: value}."""
    prefix = section + "."
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}
