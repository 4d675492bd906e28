"""``softprompt report RUN...``: Markdown + HTML report with loss/metric curves and a method comparison."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write a Markdown/HTML report with plots for one or more training runs"
EPILOG = """examples:
  softprompt report runs/pt runs/prefix --out runs/report
  softprompt report runs/pt --nearest 5      # each prompt's panel: 5 nearest vocabulary tokens per virtual token
  (method comparison needs each run's summary.json with held-out results, as the demo writes; curves need
  only log.jsonl)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="training run folders")
    parser.add_argument("--out", default="runs/report", help="output folder (default: runs/report)")
    parser.add_argument("--title", default="softprompt report")
    parser.add_argument(
        "--nearest",
        type=int,
        default=3,
        metavar="K",
        help="a panel per prompt: each virtual token's K nearest vocabulary tokens (softprompt inspect); "
        "0: no panels (the backbone is not loaded) (default: 3)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from softprompt.errors import ConfigError, check_range
    from softprompt.experiments.report import report_runs

    check_range("nearest", args.nearest, low=0, high=1000)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder for the report")
    path = report_runs(args.runs, args.out, title=args.title, nearest=args.nearest)
    print(f"report: {path} (and {path.with_suffix('.html')})")
    return 0
