"""Text data files: their encoding, and their rows (CSV / TSV through pandas, JSON and JSON lines by hand).

Encodings: UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one), and UTF-16 with a
byte-order mark (Excel's "Unicode text"). Anything else is refused with the line and byte that is not UTF-8,
rather than guessed: a wrong guess silently changes the text a prompt is trained on.

Every row is a :class:`Row` (a dict) that knows the file line it starts on where that is exact, so later
checks can say "row 3 (line 4)".
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path
from typing import Any

from softprompt.errors import DataError

SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}  # fmt: skip
ENCODINGS = "UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark"
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class Row(dict):
    """One example as read from a file; ``line`` is the file line it starts on (None when not exact)."""

    __slots__ = ("line",)

    def __init__(self, *args: Any, line: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line


def line_of(row: object) -> str:
    """`` (line N)`` for a row that knows its line, else ``""``."""
    line = getattr(row, "line", None)
    return f" (line {line})" if line else ""


def decode(path: Path) -> str:
    """The text of ``path``; a byte-order mark picks the encoding, else UTF-8.

    Raises:
        DataError: naming the line and byte that do not decode, and the encodings accepted.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror})") from None
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        guess = ""
        try:
            data.decode("cp1252")
            guess = (
                " (it reads as Windows-1252 / Latin-1: re-save it as UTF-8, e.g. `iconv -f cp1252 -t utf-8`)"
            )
        except UnicodeDecodeError:
            pass
        raise DataError(
            f"{path}: line {line}, byte {column} (0x{data[e.start]:02x}) is not valid {e.encoding.upper()}; "
            f"accepted encodings: {ENCODINGS}{guess}"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(
            f"{path}: line {line} holds NUL characters (UTF-16 without a byte-order mark?); "
            f"accepted encodings: {ENCODINGS}"
        )
    return text


def read_table(path: Path, text: str, sep: str) -> list[Row]:
    """Rows of a CSV (``sep=","``) or TSV text; values are strings, the first line names the columns.

    When the header line lacks ``sep`` but holds a tab, ``;`` or ``,``, that one separates the columns (a TSV
    saved as ``.csv``, a European Excel export with ``;``).
    Columns without a name (a pandas index written by ``to_csv``) are dropped.
    """
    import pandas as pd

    first = text.lstrip("\r\n").split("\n", 1)[0]
    if sep not in first:  # a TSV saved as .csv, a European ';' export, a CSV saved as .tsv
        sep = next((other for other in ("\t", ";", ",") if other in first), sep)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, header=None, dtype=str, na_filter=False, skip_blank_lines=True
        )
    except pd.errors.EmptyDataError:
        return []
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: {_parser_message(e)}") from None
    header = [str(h).strip() for h in frame.iloc[0].tolist()]
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DataError(f"{path}: line 1: column {name!r} appears twice; give every column its own name")
        seen.add(name)
    keep = [i for i, name in enumerate(header) if name]
    if len(frame) == 1:
        named = ", ".join(header[i] for i in keep[:6]) + (", ..." if len(keep) > 6 else "")
        raise DataError(
            f"{path}: has a header ({named}) and no rows; put one example per line below the header"
        )
    lines = _record_lines(text, len(frame))
    return [
        Row({header[i]: values[i] for i in keep}, line=lines[n + 1] if lines else None)
        for n, values in enumerate(frame.iloc[1:].itertuples(index=False, name=None))
    ]


def _record_lines(text: str, records: int) -> list[int] | None:
    """The line each record starts on, when no quoted field can span lines (else None)."""
    if '"' in text:
        return None
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip("\r")]
    return lines if len(lines) == records else None


def _parser_message(e) -> str:
    msg = str(e).replace("Error tokenizing data. C error: ", "")
    if "EOF inside string" in msg:
        return f"a quoted field is never closed ({msg}); check the quotes"
    if "Expected" in msg and "fields" in msg:
        return f"{msg}; every line needs as many fields as the header (quote values holding the separator)"
    return msg


def read_json_file(path: Path, text: str) -> list[Row] | dict[str, list[Row]]:
    """A ``.json`` file: a list of objects, ``{"train": [...], ...}``, or JSON lines under a .json name."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if _first_line_is_json(text):
            return read_jsonl(path, text)  # JSON lines in a .json file
        raise DataError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno} ({e.msg})") from None
    if isinstance(data, list):
        return _objects(data, path, None)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in SPLIT_ALIASES]
        if unknown or not all(isinstance(v, list) for v in data.values()):
            raise DataError(
                f"{path}: a JSON object must map split names to lists of examples; key(s) "
                f"{', '.join(map(repr, unknown or list(data)))} are not split names (accepted: "
                f"{', '.join(SPLIT_ALIASES)}), or give a list of objects"
            )
        return {SPLIT_ALIASES[k]: _objects(v, path, k) for k, v in data.items()}
    raise DataError(f"{path}: holds a JSON {type(data).__name__}; give a list of objects (one per example)")


def _first_line_is_json(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict) and first.strip() != text.strip()
    except json.JSONDecodeError:
        return False


def read_jsonl(path: Path, text: str) -> list[Row]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {lineno} is not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {lineno} is not a JSON object (got {type(row).__name__})")
        rows.append(Row(row, line=lineno))
    return rows


def _objects(data, path: Path, key: str | None) -> list[Row]:
    where = f"[{key!r}]" if key else ""
    if not isinstance(data, list):
        raise DataError(f"{path}{where}: expected a list of JSON objects")
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise DataError(f"{path}{where}: item {i} is a {type(r).__name__}, expected a JSON object")
    return [Row(r) for r in data]
