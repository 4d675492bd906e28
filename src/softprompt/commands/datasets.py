"""``softprompt datasets``: the built-in datasets, their task, split sizes (once cached) and templates."""

from __future__ import annotations

import argparse

NAME = "datasets"
HELP = "list built-in datasets (task, labels, split sizes when cached, templates)"
EPILOG = """examples:
  softprompt datasets
  softprompt datasets --json
Your own data works too: pass a .jsonl/.json/.csv/.tsv file or a folder to `train --dataset`, mapping its
columns with --fields text=COLUMN,label=COLUMN.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _sizes(name: str) -> dict | None:
    import json

    from softprompt.data.builtin import cache_file

    try:
        splits = json.loads(cache_file(name).read_text(encoding="utf-8"))["splits"]
        return {k: len(v) for k, v in splits.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe() -> list[dict]:
    from softprompt.data import list_datasets

    return [
        {
            "name": s.name,
            "task": s.task,
            "labels": None if s.labels is None else list(s.labels),
            "sizes": _sizes(s.name),
            "templates": list(s.default_templates),
            "description": s.description,
        }
        for s in list_datasets()
    ]


def run(args: argparse.Namespace) -> int:
    from softprompt.commands.common import print_json, table

    info = describe()
    if args.json:
        print_json(info)
        return 0
    rows = []
    for d in info:
        sizes = (
            " / ".join(f"{d['sizes'][k]:,}" for k in ("train", "validation", "test"))
            if d["sizes"]
            else "not cached"
        )
        labels = ", ".join(d["labels"]) if d["labels"] else "-"
        rows.append([d["name"], d["task"], sizes, labels if len(labels) < 40 else labels[:37] + "..."])
    print(table(rows, ["name", "task", "train / validation / test", "labels"]))
    for d in info:
        print(f"\n{d['name']}: {d['description']}")
        for t in d["templates"]:
            print(f"  template: {t!r}")
    return 0
