"""``softprompt eval``: score a trained prompt on a split of a dataset."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from softprompt.commands.taskflags import add_task_flags

if TYPE_CHECKING:
    from softprompt.data.spec import TaskData

NAME = "eval"
HELP = "score a trained prompt (or a run's best prompt) on a dataset split"
EPILOG = """examples:
  softprompt eval --prompt runs/pt                       # the run's best prompt, its dataset, test split
  softprompt eval --prompt runs/pt/final/rotten-tomatoes --split validation --json
  softprompt eval --prompt runs/pt --dataset other.jsonl --fields text=body,label=sentiment --split all
  softprompt eval --prompt prompts/from-peft --model smollm2-135m --dataset reviews.csv \\
      --fields text=sentence,label=polarity --template "Review: {text}\\nSentiment: {mask}"
The model defaults to the one the prompt was trained on (recorded in prompt.json); --model overrides it.
A run folder keeps each score in eval-<dataset>-<split>.json (read by `softprompt report`).
A prompt without a recorded task (PEFT import, save_prompt) takes the dataset's labels and --template.
Several --prompt: an ensemble (scored in one batch per chunk, combined by --combine); the metrics of the
ensemble and of each member are printed, nothing is written into the run folders.
"""
SPLITS = ("train", "validation", "test", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags, add_prompt_flags

    add_prompt_flags(parser)
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--dataset", help="built-in name or file/folder (default: the training dataset)")
    parser.add_argument(
        "--split", default="test", choices=SPLITS, help="(default: test; all = every example of the data)"
    )
    parser.add_argument("--fields", metavar="OURS=THEIRS,...", help="column mapping for your own data")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N examples")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward (default: 16)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)
    add_task_flags(parser)


def split_examples(data: TaskData, split: str) -> list[dict]:
    """One split's examples, or every example (``all``: train, validation, then test)."""
    parts = data.splits()
    return (
        [ex for s in ("train", "validation", "test") for ex in parts[s]] if split == "all" else parts[split]
    )


def dataset_and_fields(args: argparse.Namespace, meta: dict) -> tuple[str, dict | None]:
    from softprompt.commands.fields import parse_pairs
    from softprompt.errors import ConfigError

    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        raise ConfigError(
            "the prompt does not record its dataset; pass --dataset (and --fields for your data)"
        )
    if args.fields:
        return dataset, parse_pairs(args.fields)
    return dataset, meta.get("fields") if same_dataset(dataset, meta.get("dataset")) else None


def same_dataset(a: str | None, b: str | None) -> bool:
    """The same built-in name, or the same file however it is spelled (relative / absolute)."""
    from pathlib import Path

    if not a or not b:
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return a == b or (pa.exists() and pb.exists() and pa.resolve() == pb.resolve())


def eval_file_name(dataset: str, split: str) -> str:
    """``eval-<dataset>-<split>.json``: the dataset's name (a file's stem), made file-name safe."""
    from pathlib import Path

    from softprompt.commands.common import prompt_name

    return f"eval-{prompt_name(Path(dataset).stem if '/' in dataset or '.' in dataset else dataset)}-{split}.json"


def _run_ensemble(args: argparse.Namespace, paths: list[str], data, dataset: str, flags: dict) -> int:
    from softprompt.commands.backbone import load_ensemble
    from softprompt.commands.common import model_flags, print_json
    from softprompt.training.ensemble import predict_ensemble

    model, members, _ = load_ensemble(paths, args.model, spec=data.spec, **flags, **model_flags(args))
    examples = split_examples(data, args.split)[: args.limit]
    result = predict_ensemble(model, members, examples, combine=args.combine, batch_size=args.batch_size)
    task = members[0][1]
    gold = task.gold(examples)

    def metrics(probabilities: list[dict[str, float]]) -> dict:
        return task.metrics([result.labels.index(max(p, key=p.__getitem__)) for p in probabilities], gold)

    out = {
        "prompt": [n for n, _ in members],
        "dataset": dataset,
        "split": args.split,
        "examples": len(examples),
        "combine": args.combine,
        "metrics": task.metrics([result.labels.index(p) for p in result.predictions], gold),
        "members": {n: metrics(p) for n, p in result.members.items()},
        "limit": args.limit,
    }
    if args.json:
        print_json(out)
        return 0
    line = lambda m: "  ".join(f"{k} {v:.4f}" for k, v in m.items())  # noqa: E731
    print(
        f"ensemble of {len(members)} ({args.combine}) on {dataset} [{args.split}, {len(examples):,} examples]:"
    )
    print("  ensemble: " + line(out["metrics"]))
    for n, m in out["members"].items():
        print(f"  {n}: " + line(m))
    return 0


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from softprompt.commands.backbone import load_trained
    from softprompt.commands.common import model_flags, print_json
    from softprompt.commands.taskflags import task_flags
    from softprompt.data import load_dataset
    from softprompt.errors import Positive, check_value
    from softprompt.files.prompts import read_meta, resolve_prompt_dir
    from softprompt.io.atomic import atomic_write_text
    from softprompt.training import evaluate

    check_value("batch_size", args.batch_size, Positive)
    check_value("limit", args.limit, Positive | None)
    flags = task_flags(args)
    paths, args.prompt = args.prompt, args.prompt[0]
    recorded = read_meta(resolve_prompt_dir(args.prompt))
    dataset, fields = dataset_and_fields(args, recorded)
    data = load_dataset(dataset, fields=fields, seed=recorded.get("data_seed", 0))  # before the model loads
    if len(paths) > 1:
        return _run_ensemble(args, paths, data, dataset, flags)
    model, name, meta, task = load_trained(
        args.prompt, args.model, spec=data.spec, **flags, **model_flags(args)
    )
    examples = split_examples(data, args.split)[: args.limit]
    assert task is not None  # (read with need_task, which refuses a prompt without one)
    metrics = evaluate(model, task, examples, name, batch_size=args.batch_size)
    out = {
        "prompt": name,
        "dataset": dataset,
        "split": args.split,
        "examples": len(examples),
        "metrics": metrics,
        "method": meta.get("config", {}).get("method"),
        "template": getattr(getattr(task, "template", None), "source", None),
        "limit": args.limit,
    }
    run_dir = Path(args.prompt)
    if (run_dir / "run.json").is_file():  # a run folder keeps its scores (read by `softprompt report`)
        text = json.dumps(out, indent=2) + "\n"
        atomic_write_text(run_dir / eval_file_name(dataset, args.split), text)
        if (
            same_dataset(dataset, meta.get("dataset")) and args.split != "all"
        ):  # the old name, for older readers
            atomic_write_text(run_dir / f"eval-{args.split}.json", text)
    if args.json:
        print_json(out)
    else:
        print(
            f"{name} on {dataset} [{args.split}, {len(examples):,} examples]: "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
    return 0
