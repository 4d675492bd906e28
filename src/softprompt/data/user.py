"""A user's own data: map their columns to softprompt's fields, check every row, and split it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from softprompt.data.readers import read_source
from softprompt.data.spec import Task, TaskData, TaskSpec
from softprompt.data.splits import SPLITS, random_split
from softprompt.data.textfiles import line_of
from softprompt.errors import DataError

ANSWER_FIELD = {"classification": "label", "generation": "target", "labeling": "tags", "probing": "label"}
DEFAULT_FIELDS = {
    "classification": ("text", "label"),
    "generation": ("text", "target"),
    "labeling": ("tokens", "tags"),
    "probing": ("subject", "label"),
}


def load_user_data(
    path: Path,
    *,
    fields: Mapping[str, str] | None,
    task: Task | None,
    labels: Sequence[str] | Mapping | None,
    seed: int,
) -> TaskData:
    """Read, map, check and split a user's file or folder (see ``softprompt.data.load_dataset``)."""
    raw, columns = read_source(path)
    task = task or _infer_task(path, fields, columns)
    answer = ANSWER_FIELD[task]
    mapping = dict(fields) if fields else {f: f for f in DEFAULT_FIELDS[task]}
    _check_mapping(path, mapping, columns, answer, fields is None)
    label_map = _label_map(labels)
    examples = {
        name: [
            _example(row, i, _where(path, name), mapping, task, answer, label_map)
            for i, row in enumerate(rows, 1)
        ]
        for name, rows in raw.items()
    }
    parts = _splits(path, examples, seed)
    text_fields = tuple(f for f in mapping if f != answer)
    label_names = _labels(task, label_map, parts, answer)
    return TaskData(
        TaskSpec(
            name=path.stem if path.is_file() else path.name,
            task=task,
            text_fields=text_fields,
            label_field=answer,
            labels=label_names,
            default_templates=(_default_template(task, text_fields),),
            default_verbalizer={n: [n] for n in label_names or ()} if task == "classification" else None,
            description=f"user data from {path}",
        ),
        *(parts[s] for s in SPLITS),
    )


def _infer_task(path: Path, fields: Mapping[str, str] | None, columns: list[str]) -> Task:
    ours = set(fields) if fields else set(columns)
    task: Task
    for task in ("labeling", "generation", "classification"):
        if ANSWER_FIELD[task] in ours:
            return task
    raise DataError(
        f"{path}: cannot tell the task: no 'label', 'target' or 'tags' field (columns: {', '.join(columns)}); "
        "map one with fields={'label': COLUMN, 'text': COLUMN} or pass task="
    )


def _check_mapping(path: Path, mapping: dict, columns: list[str], answer: str, default: bool) -> None:
    present = ", ".join(columns)
    for ours, theirs in mapping.items():
        if theirs not in columns:
            hint = f"; map your columns with fields={{{ours!r}: COLUMN, ...}}" if default else ""
            raise DataError(f"{path}: field {ours!r} is mapped to column {theirs!r}, which is not in the data "
                            f"(columns: {present}){hint}")  # fmt: skip
    if answer not in mapping:
        raise DataError(f"{path}: fields={mapping} maps no {answer!r} field (columns: {present})")
    if len(mapping) < 2:
        raise DataError(
            f"{path}: fields={mapping} maps no input field besides {answer!r} (columns: {present})"
        )


def check_classes(data: TaskData, source: str, column: str = "label") -> None:
    """Before training a classifier: its train split holds at least two labels (one class gives loss 0 and
    "accuracy 1.0" while learning nothing). Scoring a one-class file (``eval``) stays allowed.

    Raises:
        DataError: naming ``source``, the label found and its ``column``.
    """
    if data.spec.task != "classification":
        return
    found = sorted({str(ex[data.spec.label_field]) for ex in data.train})
    if not found:
        raise DataError(f"{source}: the training split has no examples")
    if len(found) < 2:
        raise DataError(
            f"{source}: every training example has label {found[0]!r} (column {column!r}); a classifier needs "
            "at least two labels in its training split (check the label column, --fields or the split files)"
        )


def _where(path: Path, split: str) -> str:
    return str(path) if split == "all" else f"{path} [{split}]"


def _splits(path: Path, raw: dict[str, list[dict]], seed: int) -> dict[str, list[dict]]:
    """Train / validation / test: 80/10/10 of a source without splits; a source with a train split but no
    validation or test split gets the missing ones carved from train (10 % each)."""
    if "all" in raw:
        return random_split(raw["all"], seed)
    if "train" not in raw:
        raise DataError(f"{path}: no 'train' split (splits: {', '.join(raw)})")
    out = {s: raw[s] for s in SPLITS if s in raw}
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        carved = random_split(out["train"], seed)
        out["train"] = carved["train"] + [
            r for s in ("validation", "test") if s not in missing for r in carved[s]
        ]
        out.update({s: carved[s] for s in missing})
    return out


def _example(row: dict, i: int, where: str, mapping: dict, task: str, answer: str, label_map) -> dict:
    at = f"{where}: row {i}{line_of(row)}"
    ex = {}
    for ours, theirs in mapping.items():
        value = row.get(theirs)
        if ours in ("tokens", "tags"):
            value = value.split() if isinstance(value, str) else value
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise DataError(f"{at} has an empty or malformed {theirs!r} (need a list of strings)")
        elif value is None or not str(value).strip():
            raise DataError(f"{at} has an empty {theirs!r} value")
        elif isinstance(value, (dict, list)):
            raise DataError(
                f"{at}: {theirs!r} is a JSON {type(value).__name__}; accepted: a string (or a number for labels)"
            )
        else:
            value = str(value)
        ex[ours] = value
    if task == "labeling":
        if len(ex["tokens"]) != len(ex["tags"]):
            raise DataError(f"{at} has {len(ex['tokens'])} tokens but {len(ex['tags'])} tags")
        ex["text"] = " ".join(ex["tokens"])
    if label_map is not None and task != "generation":
        values = ex[answer] if task == "labeling" else [ex[answer]]
        unknown = [v for v in values if v not in label_map]
        if unknown:
            raise DataError(f"{at} has {answer} {unknown[0]!r}, not one of labels {list(label_map)}")
        mapped = [label_map[v] for v in values]
        ex[answer] = mapped if task == "labeling" else mapped[0]
    return ex


def _label_map(labels: Sequence[str] | Mapping | None) -> dict[str, str] | None:
    """Raw label (as text) -> label name; None to take the labels found in the data."""
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, str):
        raise DataError(f"labels={labels!r} must be a list of label names or a mapping, not one string")
    return {str(k): str(k) for k in labels}


def _labels(
    task: str, label_map: dict | None, parts: dict[str, list[dict]], answer: str
) -> tuple[str, ...] | None:
    if task == "generation":
        return None
    if label_map is not None:
        return tuple(dict.fromkeys(label_map.values()))
    found = {
        v
        for rows in parts.values()
        for ex in rows
        for v in (ex[answer] if task == "labeling" else [ex[answer]])
    }
    return tuple(sorted(found))


def _default_template(task: str, text_fields: tuple[str, ...]) -> str:
    if task == "labeling":
        return "{text}"
    inputs = (
        "\n".join(f"{f}: {{{f}}}" for f in text_fields) if len(text_fields) > 1 else f"{{{text_fields[0]}}}"
    )
    return f"{inputs}\nAnswer:" if task == "generation" else f"{inputs}\nAnswer: {{mask}}"
