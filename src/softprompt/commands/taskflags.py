"""Flags that say how a saved prompt classifies (``--template``, ``--verbalizer``, ``--labels``), shared by
``eval``, ``predict`` and ``sensitivity``; and what ``\\n`` / ``\\t`` typed in a shell mean."""

from __future__ import annotations

import argparse
import re
from typing import overload

TEXT_ESCAPES = "\\n and \\t in a template mean newline and tab (type them as two characters)"


@overload
def cli_text(value: str) -> str: ...
@overload
def cli_text(value: None) -> None: ...
def cli_text(value: str | None) -> str | None:
    r"""A template typed in a shell: ``\n`` -> newline, ``\t`` -> tab (``\\n`` stays a backslash + n)."""
    if value is None:
        return None
    return re.sub(r"\\(\\|n|t)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(0)), value)


def add_task_flags(parser: argparse.ArgumentParser, *, what: str = "the prompt's") -> None:
    group = parser.add_argument_group("task (for a prompt without a recorded task, or to override it)")
    group.add_argument(
        "--template", metavar="TEMPLATE", help=f"hard-prompt template (default: {what}); {TEXT_ESCAPES}"
    )
    group.add_argument(
        "--verbalizer", metavar="WORDS", help="label words: 'negative=bad;positive=good,great' or JSON"
    )
    group.add_argument(
        "--labels",
        metavar="A,B,...",
        help="label names in class order (each its own word): negative,positive",
    )


def task_flags(args: argparse.Namespace) -> dict:
    """{"template", "verbalizer", "labels"} from the flags (None where not given)."""
    from softprompt.commands.fields import parse_mapping
    from softprompt.errors import ConfigError

    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    if args.labels is not None and not labels:
        raise ConfigError(f"--labels {args.labels!r} names no label; e.g. --labels negative,positive")
    verbalizer = parse_mapping(args.verbalizer) if args.verbalizer else None
    if labels and verbalizer and set(labels) != set(verbalizer):
        raise ConfigError(
            f"--labels {','.join(labels)} and --verbalizer labels {','.join(verbalizer)} differ; give one"
        )
    if labels and verbalizer:
        verbalizer = {label: verbalizer[label] for label in labels}  # --labels sets the class order
    return {"template": cli_text(args.template), "verbalizer": verbalizer, "labels": labels}


_PY_FIELDS = re.compile(r"fields=\{([^{}]*)\}")
_PY_PAIR = re.compile(r"'([^']*)':\s*('([^']*)'|COLUMN|\.\.\.)")


def in_cli_words(message: str) -> str:
    """A library error message as the CLI user types things: ``fields={'label': COLUMN}`` ->
    ``--fields label=COLUMN``, ``pass task=`` -> a mapped answer column (the CLI infers the task)."""

    def fields(m: re.Match) -> str:
        pairs = [f"{k}={v3 or v}" for k, v, v3 in _PY_PAIR.findall(m.group(1))]
        tail = ",..." if "..." in m.group(1) and not any(p.endswith("=...") for p in pairs) else ""
        return "--fields " + ",".join(p for p in pairs if not p.endswith("=...")) + tail

    message = _PY_FIELDS.sub(fields, message)
    return message.replace(" or pass task=", " (label=... for classification, target=... for generation)")
