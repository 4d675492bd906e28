"""``softprompt eval``: score a trained prompt on a split of a dataset."""

from __future__ import annotations

NAME = "eval"
HELP = "score a trained prompt (or a run's best prompt) on a dataset split"
EPILOG = """examples:
  softprompt eval --prompt runs/pt                       # the run's best prompt, its dataset, test split
  softprompt eval --prompt runs/pt/final/rotten-tomatoes --split validation --json
  softprompt eval --prompt runs/pt --dataset other.jsonl --fields text=body,label=sentiment
The model defaults to the one the prompt was trained on (recorded in prompt.json); --model overrides it.
"""


def add_arguments(parser) -> None:
    from softprompt.commands.common import add_model_flags

    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--dataset", help="built-in name or file/folder (default: the training dataset)")
    parser.add_argument(
        "--split", default="test", choices=("train", "validation", "test"), help="(default: test)"
    )
    parser.add_argument("--fields", metavar="OURS=THEIRS,...", help="column mapping for your own data")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N examples")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward (default: 16)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


def run(args) -> int:
    import json
    from pathlib import Path

    from softprompt.commands.common import load_trained, model_flags, print_json
    from softprompt.commands.fields import parse_pairs
    from softprompt.data import load_dataset
    from softprompt.errors import ConfigError, check_range
    from softprompt.files.atomic import atomic_write_text
    from softprompt.training import evaluate

    check_range("batch_size", args.batch_size, low=1)
    if args.limit is not None:
        check_range("limit", args.limit, low=1)
    model, name, meta, task = load_trained(args.prompt, args.model, **model_flags(args))
    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        raise ConfigError("the prompt does not record its dataset; pass --dataset")
    fields = (
        parse_pairs(args.fields)
        if args.fields
        else (meta.get("fields") if dataset == meta.get("dataset") else None)
    )
    data = load_dataset(dataset, fields=fields, seed=meta.get("data_seed", 0))
    examples = data.splits()[args.split][: args.limit]
    metrics = evaluate(model, task, examples, name, batch_size=args.batch_size)
    out = {
        "prompt": name,
        "dataset": dataset,
        "split": args.split,
        "examples": len(examples),
        "metrics": metrics,
    }
    if (
        Path(args.prompt) / "run.json"
    ).is_file():  # a run folder keeps its scores (read by `softprompt report`)
        atomic_write_text(Path(args.prompt) / f"eval-{args.split}.json", json.dumps(out, indent=2) + "\n")
    if args.json:
        print_json(out)
    else:
        print(
            f"{name} on {dataset} [{args.split}, {len(examples):,} examples]: "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
    return 0
