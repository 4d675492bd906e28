"""``softprompt report RUN...``: Markdown + HTML report with loss/metric curves and a method comparison."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write a Markdown/HTML report with plots for one or more training runs"
EPILOG = """examples:
  softprompt report runs/pt runs/prefix --out runs/report
  (method comparison needs each run's summary.json with held-out results, as the demo writes; curves need
  only log.jsonl)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="training run folders")
    parser.add_argument("--out", default="runs/report", help="output folder (default: runs/report)")
    parser.add_argument("--title", default="softprompt report")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from softprompt.errors import ConfigError
    from softprompt.experiments.report import report_runs

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder for the report")
    path = report_runs(args.runs, args.out, title=args.title)
    print(f"report: {path} (and {path.with_suffix('.html')})")
    return 0
