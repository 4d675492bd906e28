"""Config dataclasses as command-line flags and YAML sections: one description (field, type, default, doc).

A field ``num_virtual_tokens: int`` becomes ``--num-virtual-tokens N``; a ``bool`` becomes
``--flag/--no-flag``; ``X | None`` accepts ``none``. Flags default to "not given" (``argparse.SUPPRESS``), so
only what the user typed overrides a YAML file. YAML values pass through the same parsers (PyYAML reads
``3e-2`` as a string), and a bad value raises ConfigError naming ``section.field``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Literal

from softprompt.errors import ConfigError


@dataclass
class Field:
    name: str
    hint: object
    default: object
    doc: str


def field_docs(cls) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) of a dataclass and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def fields_of(cls, skip: tuple[str, ...] = ()) -> list[Field]:
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append(Field(f.name, hints[f.name], default, docs.get(f.name, "")))
    return out


def _args(hint) -> tuple[list, bool]:
    """(the hint's non-None members, whether None is accepted)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return members, len(members) < len(typing.get_args(hint))
    return [hint], False


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


def coerce(where: str, value, hint):
    """``value`` (from YAML or the command line) as ``hint`` requires; ConfigError naming ``where``."""
    members, optional = _args(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional or hint is type(None):
            return None
        raise ConfigError(f"{where} may not be empty")
    base = members[0]
    try:
        if typing.get_origin(base) is Literal:
            choices = typing.get_args(base)
            if value not in choices:
                raise ConfigError(
                    f"{where}={value!r} is not accepted; choose one of: {', '.join(map(str, choices))}"
                )
            return value
        if base is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if typing.get_origin(base) is dict or base is dict:
            if not isinstance(value, (str, dict)):
                raise ValueError
            pairs = typing.get_args(base)[1:] == (str,)  # dict[str, str]: 'a=x,b=y'; else 'a=x,y;b=z'
            if isinstance(value, str):
                return parse_pairs(value) if pairs else parse_mapping(value)
            return {str(k): str(v) for k, v in value.items()} if pairs else dict(value)
    except (TypeError, ValueError):
        name = getattr(base, "__name__", str(base))
        raise ConfigError(f"{where}={value!r} is not a valid {name}") from None
    return value


def add_flags(parser, fields: list[Field], section: str, *, help_suffix=None) -> None:
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
