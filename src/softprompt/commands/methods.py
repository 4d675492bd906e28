"""``softprompt methods``: the prompt methods and their config fields."""

from __future__ import annotations

import argparse

NAME = "methods"
HELP = "list prompt methods, their config fields (defaults, docs) and their measured training defaults"
EPILOG = """examples:
  softprompt methods            # a table per method
  softprompt methods --json     # {method: {doc, trains, fields: {field: {default, type, doc}}, train_defaults,
                                #           train_defaults_measured, train_defaults_trained_head}}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def describe() -> dict:
    from softprompt.commands.fields import fields_of
    from softprompt.methods import METHODS, TRAINABLE
    from softprompt.training.config import TrainConfig

    out = {}
    for method in TRAINABLE:
        spec = METHODS[method]
        cls = spec.config
        out[method] = {
            "doc": " ".join((cls.__doc__ or "").split()),
            "trains": spec.train is not None,
            "fields": {
                f.name: {"default": f.default, "type": _type_name(f.hint), "doc": f.doc}
                for f in fields_of(cls, skip=("method",))
            },
            "train_defaults": _train_defaults(TrainConfig.for_method(method)),
            "train_defaults_measured": spec.defaults_measured,
            "train_defaults_trained_head": _train_defaults(TrainConfig.for_method(method, trained_head=True)),
        }
    return out


def _train_defaults(config) -> dict:
    """The training settings ``softprompt train --method M`` starts from (flags override them)."""
    keys = ("lr", "head_lr", "warmup_ratio", "steps", "batch_size", "scheduler")
    return {k: getattr(config, k) for k in keys if k != "head_lr" or config.head_lr is not None}


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def run(args: argparse.Namespace) -> int:
    from softprompt.commands.common import print_json, table

    info = describe()
    if args.json:
        print_json(info)
        return 0
    for method, d in info.items():
        print(f"{method}: {d['doc']}")
        if not d["trains"]:
            print("  (no trainable parameters: the template and verbalizer are the prompt)\n")
            continue
        rows = [
            [f"--{name.replace('_', '-')}", repr(f["default"]), f["doc"]] for name, f in d["fields"].items()
        ]
        print(table(rows, ["flag", "default", "meaning"]))
        train = "  ".join(
            f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
            for k, v in d["train_defaults"].items()
        )
        source = "measured, bench/results/lr_sweep-*.md" if d["train_defaults_measured"] else "not swept here"
        print(f"  training defaults ({source}): {train}")
        head = d["train_defaults_trained_head"]
        rates = f"--lr {head['lr']:g}" + (f" --head-lr {head['head_lr']:g}" if "head_lr" in head else "")
        print(f"  with a trained head (bare encoders): {rates}\n")
    return 0
