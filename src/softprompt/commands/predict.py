"""``softprompt predict``: a trained prompt's predictions for new inputs."""

from __future__ import annotations

NAME = "predict"
HELP = "predict labels / tags / text for new inputs with a trained prompt"
EPILOG = """examples:
  softprompt predict --prompt runs/pt --text "a gorgeous, witty, seductive movie"
  softprompt predict --prompt runs/pt --input reviews.jsonl --json     # one JSON object per line
Input lines carry the fields the template uses (e.g. {"text": "..."}, or the columns --fields mapped in
training); --text fills the first one.
"""


def add_arguments(parser) -> None:
    from softprompt.commands.common import add_model_flags

    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input", metavar="FILE", help="examples: JSONL (one JSON object per line), JSON, CSV or TSV"
    )
    src.add_argument("--text", help="one input text")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward (default: 16)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


def text_example(meta: dict, text: str) -> dict:
    spec = meta["spec"]
    if spec["task"] == "labeling":
        return {"tokens": text.split(), "text": text}
    return {spec["text_fields"][0]: text}


def run(args) -> int:
    from softprompt.commands.common import check_rows, label_of, load_trained, model_flags, print_json
    from softprompt.data.readers import read_rows
    from softprompt.errors import ConfigError, check_range
    from softprompt.training import predict

    check_range("batch_size", args.batch_size, low=1)
    if args.text is not None and not args.text.strip():
        raise ConfigError('--text is empty; give the input to predict for, e.g. --text "a gorgeous film"')
    rows = read_rows(args.input) if args.input else None  # a bad file fails before the model loads
    model, name, meta, task = load_trained(args.prompt, args.model, **model_flags(args))
    examples = rows if rows is not None else [text_example(meta, args.text)]
    for ex in examples:  # rows may use the training data's own column names (--fields text=review,...)
        ex.update(
            {
                ours: ex[theirs]
                for ours, theirs in (meta.get("fields") or {}).items()
                if ours not in ex and theirs in ex
            }
        )
    check_rows(examples, task, args.input or "--text", meta.get("fields"))
    predictions = [
        label_of(task, p) for p in predict(model, task, examples, name, batch_size=args.batch_size)
    ]
    if args.json:
        print_json([{"input": ex, "prediction": p} for ex, p in zip(examples, predictions)])
    else:
        for p in predictions:
            print(" ".join(p) if isinstance(p, list) else p)
    return 0
