"""The CLI's commands, one module each.

A command module defines ``NAME`` (the subcommand), ``HELP`` (one line), optionally ``EPILOG`` (examples shown
by ``--help``), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code). Heavy imports go inside
``run`` so ``softprompt --help`` stays fast. Adding a command = a module here + one entry in ``COMMANDS``.
"""

from softprompt.commands import (
    datasets,
    demo,
    evaluate,
    generate,
    inspect,
    methods,
    peft,
    predict,
    report,
    sensitivity,
    serve,
    train,
)

COMMANDS = [
    methods,
    datasets,
    train,
    evaluate,
    predict,
    generate,
    inspect,
    sensitivity,
    report,
    peft,
    serve,
    demo,
]
