"""Read a user's data file or folder into rows (dicts keyed by the user's column names), per split if it has
splits.

Accepted: ``.jsonl``, ``.json`` (a list of objects, or ``{"train": [...], ...}``), ``.csv``, ``.tsv``, a folder
written by ``datasets.save_to_disk`` (a Dataset or a DatasetDict), or a folder holding ``train.*``,
``validation.*`` (or ``dev.*``) and ``test.*`` files of one of those formats.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from softprompt.errors import DataError

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}  # fmt: skip


def read_source(path: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """Rows of ``path`` by split name (``{"all": rows}`` when it has no splits), and the columns present.

    Raises:
        DataError: unreadable file, unsupported format, or no rows.
    """
    if path.is_dir():
        splits = _read_folder(path)
    else:
        rows = _read_file(path)
        splits = rows if isinstance(rows, dict) else {"all": rows}
    if not any(splits.values()):
        raise DataError(f"{path}: no examples (the file is empty)")
    columns: dict[str, None] = {}
    for rows in splits.values():
        for row in rows:
            columns.update(dict.fromkeys(row))
    return splits, list(columns)


def read_rows(path: str | Path) -> list[dict]:
    """The rows of one ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` file (e.g. ``softprompt predict --input``).

    Raises:
        DataError: missing file, unsupported format, a line that is not a JSON object, splits, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    rows = _read_file(path)
    if isinstance(rows, dict):
        raise DataError(f"{path}: holds splits {sorted(rows)}; give a file of rows (one example per line)")
    if not rows:
        raise DataError(f"{path}: no examples (the file is empty)")
    return rows


def _read_file(path: Path) -> list[dict] | dict[str, list[dict]]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; accepted: {', '.join(SUFFIXES)} or a folder"
        )
    if suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="," if suffix == ".csv" else "\t"))
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # perhaps JSON lines in a .json file
        if isinstance(data, list):
            return _objects(data, path, None)
        if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            return {SPLIT_ALIASES.get(k, k): _objects(v, path, k) for k, v in data.items()}
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            row = _parse_json(line, path, lineno)
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {lineno} is not a JSON object")
            rows.append(row)
    return rows


def _parse_json(line: str, path: Path, lineno: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None


def _objects(data, path: Path, key: str | None) -> list[dict]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        where = f"[{key!r}]" if key else ""
        raise DataError(f"{path}{where}: expected a list of JSON objects")
    return data


def _read_folder(path: Path) -> dict[str, list[dict]]:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _read_saved_dataset(path)
    files = sorted(
        p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.stem.lower() in SPLIT_ALIASES
    )
    if not files:
        raise DataError(
            f"{path}: not a datasets.save_to_disk folder and holds no train/validation/test "
            f"file ({', '.join(SUFFIXES)})"
        )
    splits: dict[str, list[dict]] = {}
    for file in files:
        rows = _read_file(file)
        if isinstance(rows, dict):
            raise DataError(f"{file}: a split file must hold a list of rows, not splits")
        splits.setdefault(SPLIT_ALIASES[file.stem.lower()], []).extend(rows)
    return splits


def _read_saved_dataset(path: Path) -> dict[str, list[dict]]:
    """Rows of a save_to_disk folder; ClassLabel columns become their label names."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"{path}: datasets.load_from_disk failed: {e}") from None
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    out = {}
    for name, part in parts.items():
        rows = part.to_list()
        for column, feature in part.features.items():
            if isinstance(feature, datasets.ClassLabel):
                for row in rows:
                    value = row[column]  # -1 marks an unlabelled row (e.g. GLUE test sets)
                    row[column] = feature.int2str(value) if value is not None and value >= 0 else None
        out[SPLIT_ALIASES.get(name, name)] = rows
    return out
