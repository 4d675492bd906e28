"""``softprompt`` command line: builds the parser from ``commands.COMMANDS`` and runs one command.

Errors softprompt raises on purpose (``SoftPromptError``) print as one line, ``softprompt: error: ...``,
with exit code 2 — no traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from softprompt.errors import SoftPromptError

DESCRIPTION = (
    "Prompt learning on a frozen transformer: hard prompts, prompt tuning, P-tuning v1/v2, prefix tuning."
)
EPILOG = """examples:
  softprompt methods                                   # what can be trained, with every option
  softprompt datasets                                  # built-in datasets and their templates
  softprompt train --model smollm2-135m --method prompt-tuning --dataset rotten-tomatoes --out runs/pt
  softprompt eval --prompt runs/pt                     # best prompt of the run, on the test split
  softprompt predict --prompt runs/pt --text "a gorgeous, witty, seductive movie"
  softprompt generate --prompt runs/headlines --text "The council voted ..."
Run `softprompt COMMAND --help` for a command's options and more examples.
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; ``only`` = a command name adds only that command's options (``""``: none), so
    ``softprompt --help`` never imports what a command's options need (torch, transformers)."""
    from softprompt.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="softprompt",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.HELP,
            epilog=getattr(command, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or only == command.NAME:
            command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (argparse usage errors exit with 2 themselves)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), "")  # the command (top level has no options)
    args = build_parser(only=chosen).parse_args(argv)
    shown = warnings.formatwarning  # our warnings read "softprompt: warning: ...", not a source line
    warnings.formatwarning = lambda *w, **kw: _one_line(*w, **kw) if _ours(w[2]) else shown(*w, **kw)
    try:
        return args.run(args)
    except SoftPromptError as e:
        from softprompt.commands.taskflags import in_cli_words

        message = in_cli_words(" ".join(str(e).split("\n")).strip())
        print(f"softprompt: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("softprompt: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


def _ours(filename: str) -> bool:
    from pathlib import Path

    return Path(__file__).parent in Path(filename).parents


def _one_line(message, category, filename, lineno, line=None) -> str:
    kind = "warning" if category is UserWarning else category.__name__
    return f"softprompt: {kind}: {' '.join(str(message).split())}\n"
