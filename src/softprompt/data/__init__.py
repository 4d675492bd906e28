"""Datasets: four built-ins with fixed splits, and the user's own files.

Example::

    data = load_dataset("rotten-tomatoes")
    data.train[0]                   # {"text": "...", "label": "positive", "movie": "..."}
    data.spec.default_templates[0]  # "Review: {text}\\nSentiment: {mask}"
    mine = load_dataset("reviews.csv", fields={"text": "review_body", "label": "stars"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from softprompt.data.builtin import BUILTINS, load_builtin
from softprompt.data.spec import Task, TaskData, TaskSpec
from softprompt.data.splits import stable_shuffle
from softprompt.data.user import check_classes, load_user_data
from softprompt.errors import ConfigError, DataError, Positive, check_value

__all__ = ["TaskData", "TaskSpec", "check_classes", "list_datasets", "load_dataset"]


def list_datasets() -> list[TaskSpec]:
    """The specs of the built-in datasets. Installs and parses nothing, so a spec whose labels come from the
    data (``facts``) has ``labels=None`` here; ``load_dataset(name).spec`` has them."""
    return [b.spec for b in BUILTINS.values()]


def load_dataset(
    name_or_path: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    task: Task | None = None,
    labels: Sequence[str] | Mapping | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> TaskData:
    """Load a built-in dataset by name, or the user's own data from a file or folder.

    Built-ins (``rotten-tomatoes``, ``facts``, ``headlines``, ``punctuation``) have fixed splits, the same
    for every seed. The user's data is read from ``.jsonl``, ``.json``, ``.csv``, ``.tsv``, a
    ``datasets.save_to_disk`` folder, or a folder of ``train.*`` / ``validation.*`` / ``test.*`` files; without
    splits it is split 80/10/10 by ``seed``. Only mapped columns are kept.

    Args:
        name_or_path: A built-in name, or a path.
        fields: Our field -> the user's column, e.g. ``{"text": "review_body", "label": "stars"}``. Default:
            the task's own names (``text``+``label``, ``text``+``target``, ``tokens``+``tags``).
        task: ``classification``, ``generation``, ``labeling`` or ``probing``; inferred from the fields
            (``label``, ``target``, ``tags``) when None.
        labels: Label names in order (values outside are an error), or a mapping raw value -> name
            (``{0: "negative", 1: "positive"}``); default: the sorted values found.
        seed: Split seed for user data without splits, and which training examples ``limit`` keeps.
        limit: Keep at most this many examples per split: a seeded sample of train (few-shot runs differ
            by seed) and the first ones of validation and test (every seed is scored on the same examples).

    Returns:
        The spec and the train / validation / test examples as dicts.

    Raises:
        DataError: unknown name, missing or empty file, a mapped column absent, an empty value (naming the row).
        ConfigError: an argument out of range, or ``fields``/``task``/``labels`` given for a built-in.
    """
    check_value("task", task, Task | None)
    check_value("limit", limit, Positive | None)
    name = str(name_or_path)
    if name in BUILTINS:
        given = [k for k, v in (("fields", fields), ("task", task), ("labels", labels)) if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} apply to your own data, not to built-in dataset {name!r}")
        data = load_builtin(name)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise DataError(_not_found(name))
        data = load_user_data(path, fields=fields, task=task, labels=labels, seed=seed)
    if limit is not None:
        data = TaskData(
            data.spec, stable_shuffle(data.train, seed)[:limit], data.validation[:limit], data.test[:limit]
        )
    return data


def _not_found(name: str) -> str:
    looks_like_path = any(sep in name for sep in ("/", "\\")) or Path(name).suffix != ""
    if looks_like_path:
        return f"no such file or folder: {name}"
    return (
        f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTINS)} (or give a file or folder path)"
    )
