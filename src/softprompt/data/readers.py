"""Read a user's data file or folder into rows (dicts keyed by the user's column names), per split if it has
splits.

Accepted: ``.jsonl``, ``.json`` (a list of objects, or ``{"train": [...], ...}``), ``.csv``, ``.tsv``, a folder
written by ``datasets.save_to_disk`` (a Dataset or a DatasetDict), or a folder holding ``train.*``,
``validation.*`` (or ``dev.*``) and ``test.*`` files of one of those formats.
"""

from __future__ import annotations

from pathlib import Path

from softprompt.data.textfiles import SPLIT_ALIASES, Row, decode, read_json_file, read_jsonl, read_table
from softprompt.errors import DataError

__all__ = ["SPLIT_ALIASES", "SUFFIXES", "Row", "read_rows", "read_source"]

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


def read_source(path: Path) -> tuple[dict[str, list[Row]], list[str]]:
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
    for part in splits.values():
        for row in part:
            columns.update(dict.fromkeys(row))
    return splits, list(columns)


def read_rows(path: str | Path) -> list[Row]:
    """The rows of one ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` file (e.g. ``softprompt predict --input``).

    Raises:
        DataError: missing file, unsupported format, a line that is not a JSON object, splits, or no rows.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give one {', '.join(SUFFIXES)} file of examples")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    rows = _read_file(path)
    if isinstance(rows, dict):
        raise DataError(f"{path}: holds splits {sorted(rows)}; give a file of rows (one example per line)")
    if not rows:
        raise DataError(f"{path}: no examples (the file is empty)")
    return rows


def _read_file(path: Path) -> list[Row] | dict[str, list[Row]]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; accepted: {', '.join(SUFFIXES)} or a folder"
        )
    text = decode(path)
    if suffix in (".csv", ".tsv"):
        return read_table(path, text, "," if suffix == ".csv" else "\t")
    return read_json_file(path, text) if suffix == ".json" else read_jsonl(path, text)


def _read_folder(path: Path) -> dict[str, list[Row]]:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _read_saved_dataset(path)
    files = sorted(
        p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.stem.lower() in SPLIT_ALIASES
    )
    if not files:
        others = sorted(p.name for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        found = (
            f"; it holds {', '.join(others[:5])} (name them train.*, validation.*, test.*)" if others else ""
        )
        raise DataError(
            f"{path}: not a datasets.save_to_disk folder and holds no train/validation/test "
            f"file ({', '.join(SUFFIXES)}){found}"
        )
    splits: dict[str, list[Row]] = {}
    for file in files:
        rows = _read_file(file)
        if isinstance(rows, dict):
            raise DataError(f"{file}: a split file must hold a list of rows, not splits")
        splits.setdefault(SPLIT_ALIASES[file.stem.lower()], []).extend(rows)
    return splits


def _read_saved_dataset(path: Path) -> dict[str, list[Row]]:
    """Rows of a save_to_disk folder; ClassLabel columns become their label names."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"{path}: datasets.load_from_disk failed: {e}") from None
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    out: dict[str, list[Row]] = {}
    for name, part in parts.items():
        rows = [Row(r) for r in part.to_list()]
        for column, feature in part.features.items():
            if isinstance(feature, datasets.ClassLabel):
                for row in rows:
                    value = row[column]  # -1 marks an unlabelled row (e.g. GLUE test sets)
                    row[column] = feature.int2str(value) if value is not None and value >= 0 else None
        out[SPLIT_ALIASES.get(name, name)] = rows
    return out
