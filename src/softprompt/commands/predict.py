"""``softprompt predict``: a trained prompt's predictions for new inputs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from softprompt.commands.taskflags import add_task_flags

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.data.readers import Row
    from softprompt.tasks.base import Task

NAME = "predict"
HELP = "predict labels (with scores) / tags / text for new inputs with a trained prompt"
EPILOG = """examples:
  softprompt predict --prompt runs/pt --text "a gorgeous, witty, seductive movie"
  softprompt predict --prompt runs/pt --input reviews.jsonl --json     # one JSON object per line
  softprompt predict --prompt runs/pt --split all --json               # every example of the run's dataset
  softprompt predict --prompt runs/pt-s0 --prompt runs/pt-s1 --prompt runs/pt-s2 --text "a dull film"
  softprompt predict --prompt prompts/from-peft --model smollm2-135m --labels negative,positive \\
      --template "Review: {text}\\nSentiment: {mask}" --text "a joyless, overlong mess"
Input lines carry the fields the template uses (e.g. {"text": "..."}, or the columns --fields mapped in
training); --text fills the first one. Classification prints the label and each label's probability.
Several --prompt: an ensemble on the first prompt's backbone; every input is scored under every prompt in one
batch, and the members' probabilities are averaged (--combine vote: the majority label).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags, add_prompt_flags

    add_prompt_flags(parser)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input", metavar="FILE", help="examples: JSONL (one JSON object per line), JSON, CSV or TSV"
    )
    src.add_argument("--text", help="one input text")
    src.add_argument(
        "--split",
        choices=("train", "validation", "test", "all"),
        help="a split of --dataset (default: the prompt's training data); all = every example",
    )
    parser.add_argument("--dataset", help="with --split: built-in name or file/folder")
    parser.add_argument("--fields", metavar="OURS=THEIRS,...", help="with --split: your data's columns")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward (default: 16)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)
    add_task_flags(parser)


def text_example(meta: dict, text: str) -> dict:
    spec = meta["spec"]
    if spec["task"] == "labeling":
        return {"tokens": text.split(), "text": text}
    return {spec["text_fields"][0]: text}


def label_probabilities(
    model: PromptedModel, task: Task, examples: list[dict], name: str, batch_size: int
) -> list[dict] | None:
    """Per example, each label's probability (softmax of the task's label scores); None for other tasks."""
    from softprompt.training.evaluation import eval_mode

    score = getattr(task, "scores", None) or getattr(task, "logits", None)
    labels = getattr(getattr(task, "verbalizer", None), "labels", None) or getattr(task, "labels", None)
    if score is None or not labels or getattr(task, "tags", None) is not None:
        return None
    out = []
    with eval_mode(model, task):
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            probs = score(model, task.collate(chunk), [name] * len(chunk)).float().softmax(-1)  # (B, C)
            out += [dict(zip(labels, map(float, row))) for row in probs.tolist()]
    return out


ANSWER_FIELDS = ("label_field", "tags_field", "target_field")


def without_answers(task: Task, examples: list[dict], source: str | None, fields: dict | None) -> list[dict]:
    """The examples without the field that holds the answer (label, tags, target): prediction does not read it.

    A label value the prompt does not know (e.g. a file labelled with more classes) is named with its file and
    line in a warning, not refused.
    """
    import warnings

    from softprompt.data.textfiles import line_of

    answer = next((getattr(task, a) for a in ANSWER_FIELDS if getattr(task, a, None)), None)
    if answer is None:
        return examples
    verbalizer = getattr(task, "verbalizer", None)
    known = list(verbalizer.labels) if verbalizer is not None else getattr(task, "labels", None)
    if source is not None and isinstance(known, list) and getattr(task, "tags_field", None) is None:
        unknown = [(i, ex) for i, ex in enumerate(examples, 1) if answer in ex and ex[answer] not in known]
        if unknown:
            i, ex = unknown[0]
            theirs = (fields or {}).get(answer) or answer
            more = f" (and {len(unknown) - 1} more rows)" if len(unknown) > 1 else ""
            warnings.warn(
                f"{source}: row {i}{line_of(ex)}: column {theirs!r} holds {ex[answer]!r}, not one of the "
                f"prompt's labels ({', '.join(map(str, known))}){more}; prediction does not read it: ignored",
                stacklevel=2,
            )
    return [{k: v for k, v in ex.items() if k != answer} for ex in examples]


def _examples(args, meta: dict, rows):
    if rows is not None:
        return rows
    if args.text is not None:
        return [text_example(meta, args.text)]
    from softprompt.commands.evaluate import dataset_and_fields, split_examples
    from softprompt.data import load_dataset

    dataset, fields = dataset_and_fields(args, meta)
    return split_examples(load_dataset(dataset, fields=fields, seed=meta.get("data_seed", 0)), args.split)


def _inputs(args, meta: dict, task, rows) -> list[dict]:
    """The examples to predict for, with the training data's column names mapped to the task's fields."""
    from softprompt.commands.common import check_rows

    examples = _examples(args, meta, rows)
    assert task is not None  # (read with need_task, which refuses a prompt without one)
    for ex in examples:  # rows may use the training data's own column names (--fields text=review,...)
        ex.update(
            {
                ours: ex[theirs]
                for ours, theirs in (meta.get("fields") or {}).items()
                if ours not in ex and theirs in ex
            }
        )
    check_rows(examples, task, args.input or "--text", meta.get("fields"))
    return examples


def _run_ensemble(args: argparse.Namespace, rows: list[Row] | None, flags: dict) -> int:
    from softprompt.commands.backbone import load_ensemble
    from softprompt.commands.common import model_flags, print_json
    from softprompt.training.ensemble import predict_ensemble

    model, members, metas = load_ensemble(args.prompt, args.model, **flags, **model_flags(args))
    examples = _inputs(args, metas[0], members[0][1], rows)
    inputs = without_answers(members[0][1], examples, args.input, metas[0].get("fields"))
    result = predict_ensemble(model, members, inputs, combine=args.combine, batch_size=args.batch_size)
    if args.json:
        print_json(
            [
                {"input": ex, "prediction": result.predictions[i], "scores": result.probabilities[i]}
                | {"votes": result.votes[i], "members": {n: s[i] for n, s in result.members.items()}}
                for i, ex in enumerate(examples)
            ]
        )
        return 0
    for p, probs in zip(result.predictions, result.probabilities):
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:5]
        print(f"{p}  (" + ", ".join(f"{k} {v:.3f}" for k, v in top) + ")")
    return 0


def run(args: argparse.Namespace) -> int:
    from softprompt.commands.backbone import load_trained
    from softprompt.commands.common import label_of, model_flags, print_json
    from softprompt.commands.taskflags import task_flags
    from softprompt.data.readers import read_rows
    from softprompt.errors import ConfigError, Positive, check_value
    from softprompt.training import predict

    check_value("batch_size", args.batch_size, Positive)
    if args.text is not None and not args.text.strip():
        raise ConfigError('--text is empty; give the input to predict for, e.g. --text "a gorgeous film"')
    flags = task_flags(args)
    rows = read_rows(args.input) if args.input else None  # a bad file fails before the model loads
    if len(args.prompt) > 1:
        return _run_ensemble(args, rows, flags)
    model, name, meta, task = load_trained(args.prompt[0], args.model, **flags, **model_flags(args))
    assert task is not None  # (read with need_task, which refuses a prompt without one)
    examples = _inputs(args, meta, task, rows)
    inputs = without_answers(task, examples, args.input, meta.get("fields"))
    predictions = [label_of(task, p) for p in predict(model, task, inputs, name, batch_size=args.batch_size)]
    probs = label_probabilities(model, task, inputs, name, args.batch_size)
    if args.json:
        print_json(
            [
                {"input": ex, "prediction": p} | ({"scores": probs[i]} if probs else {})
                for i, (ex, p) in enumerate(zip(examples, predictions))
            ]
        )
        return 0
    for i, p in enumerate(predictions):
        line = " ".join(p) if isinstance(p, list) else str(p)
        if probs:
            top = sorted(probs[i].items(), key=lambda kv: -kv[1])[:5]  # probing may have many candidates
            line += "  (" + ", ".join(f"{k} {v:.3f}" for k, v in top) + ")"
        print(line)
    return 0
