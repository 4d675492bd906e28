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
    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE.jsonl", help="one JSON object per line")
    src.add_argument("--text", help="one input text")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward (default: 16)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def read_jsonl(path: str) -> list[dict]:
    import json
    from pathlib import Path

    from ..errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i} is not JSON ({e})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i} is not a JSON object")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def text_example(meta: dict, text: str) -> dict:
    spec = meta["spec"]
    if spec["task"] == "labeling":
        return {"tokens": text.split(), "text": text}
    return {spec["text_fields"][0]: text}


def run(args) -> int:
    from ..errors import check_range
    from ..train import predict
    from .common import label_of, load_trained, print_json

    check_range("batch_size", args.batch_size, low=1)
    model, name, meta, task = load_trained(args.prompt, args.model)
    examples = read_jsonl(args.input) if args.input else [text_example(meta, args.text)]
    for ex in examples:  # rows may use the training data's own column names (--fields text=review,...)
        ex.update({ours: ex[theirs] for ours, theirs in (meta.get("fields") or {}).items()
                   if ours not in ex and theirs in ex})
    predictions = [label_of(task, p) for p in predict(model, task, examples, name, batch_size=args.batch_size)]
    if args.json:
        print_json([{"input": ex, "prediction": p} for ex, p in zip(examples, predictions)])
    else:
        for p in predictions:
            print(" ".join(p) if isinstance(p, list) else p)
    return 0
