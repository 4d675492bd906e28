"""``softprompt sensitivity``: many hand-written templates on one dataset — accuracy spread and a plot."""

from __future__ import annotations

import argparse

NAME = "sensitivity"
HELP = "score many hand-written templates zero-shot on one dataset; print the spread, plot it"
EPILOG = """examples:
  softprompt sensitivity --model smollm2-135m --dataset rotten-tomatoes --limit 200
  softprompt sensitivity --dataset rotten-tomatoes --template "{text} Overall it was {mask}." --template "Review: {text}\\nSentiment: {mask}"
  softprompt sensitivity --dataset reviews.csv --fields text=sentence,label=polarity --split all
In a template, \\n and \\t mean newline and tab. Your own data without --template is scored under the
candidate templates `softprompt train` chooses its start from (the data's own, generic and built-in ones).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags

    parser.add_argument("--model", default="smollm2-135m", help="backbone (default: smollm2-135m)")
    parser.add_argument(
        "--dataset", default="rotten-tomatoes", help="classification dataset (default: rotten-tomatoes)"
    )
    parser.add_argument(
        "--template", action="append", help="a template (repeat; default: the dataset's own); \\n = newline"
    )
    parser.add_argument(
        "--fields", metavar="OURS=THEIRS,...", help="your data's columns: text=COLUMN,label=COLUMN"
    )
    parser.add_argument("--split", default="test", choices=("train", "validation", "test", "all"))
    parser.add_argument("--limit", type=int, default=200, help="examples scored per template (default: 200)")
    parser.add_argument("--out", default="runs/sensitivity", help="folder for sensitivity.json and .png")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from softprompt.commands.common import (
        check_template,
        load_backbone,
        model_flags,
        model_kind,
        print_json,
        quiet_loading,
    )
    from softprompt.commands.evaluate import split_examples
    from softprompt.commands.fields import parse_pairs
    from softprompt.commands.taskflags import cli_text
    from softprompt.data import load_dataset
    from softprompt.errors import ConfigError, Positive, check_value
    from softprompt.experiments.sensitivity import plot_sensitivity, template_sensitivity
    from softprompt.io.atomic import atomic_write_text
    from softprompt.tasks.choose import candidate_bodies

    check_value("limit", args.limit, Positive)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder for sensitivity.json and .png")
    quiet_loading()
    data = load_dataset(args.dataset, fields=parse_pairs(args.fields) if args.fields else None)
    if data.spec.task not in ("classification", "probing"):
        raise ConfigError(
            f"dataset {args.dataset!r} is a {data.spec.task} task; sensitivity scores "
            "classification/probing templates"
        )
    templates = [cli_text(t) for t in args.template or ()] or list(data.spec.default_templates)
    if not args.template and len(templates) < 2 and data.spec.task == "classification":  # candidates
        templates = [t for t, _ in candidate_bodies(data.spec)]
    kind = model_kind(args.model)
    for template in templates:  # every template checked before the model loads
        check_template(template, data.spec, kind=kind)
    model = load_backbone(args.model, **model_flags(args))
    examples = split_examples(data, args.split)[: args.limit]
    result = template_sensitivity(model, data.spec, examples, templates)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sensitivity.json", json.dumps(result, indent=2))
    plot_sensitivity(result, out / "sensitivity.png")
    if args.json:
        print_json(result)
        return 0
    for r in sorted(result["templates"], key=lambda r: -r[result["metric"]]):
        print(f"{r[result['metric']]:.3f}  {r['template']!r}")
    print(
        f"spread {result['spread']:.3f} (min {result['min']:.3f}, median {result['median']:.3f}, "
        f"max {result['max']:.3f}); plot: {out / 'sensitivity.png'}"
    )
    return 0
