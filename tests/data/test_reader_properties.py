"""Property tests of the data readers: CSV / TSV / JSONL / JSON with random encodings, byte-order marks, line
endings, quoting, empty and huge cells: rows come back, or a DataError naming the file (never another exception)."""

import codecs
import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from softprompt.data.readers import read_rows
from softprompt.errors import DataError

CELL = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", '"', '""', ",", "\t", ";", "\n", "\r\n", " ", "NA", "null"]),
    st.integers(1000, 30000).map(lambda n: "x" * n),  # a huge cell
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252", "latin-1"])
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
SUFFIX = st.sampled_from([".csv", ".tsv", ".jsonl", ".json"])


def _read(path):
    """The rows of ``path``, or None when refused with a DataError that names it."""
    try:
        return read_rows(path)
    except DataError as e:
        assert str(path) in str(e), str(e)
        return None


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@given(
    header=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4),
    rows=st.lists(st.lists(CELL, min_size=0, max_size=5), max_size=5),
    suffix=st.sampled_from([".csv", ".tsv"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]),
    newline=NEWLINES,
    encoding=ENCODINGS,
)
def test_tables_read_or_name_the_file(tmp_path_factory, header, rows, suffix, quoting, newline, encoding):
    buf = io.StringIO()
    sep = "," if suffix == ".csv" else "\t"
    try:
        writer = csv.writer(buf, delimiter=sep, quoting=quoting, lineterminator=newline, escapechar="\\")
        writer.writerows([header, *rows])
    except csv.Error:
        return
    path = tmp_path_factory.mktemp("t") / f"data{suffix}"
    path.write_bytes(_encode(buf.getvalue(), encoding))
    got = _read(path)
    if got is not None:
        assert all(isinstance(v, str) for row in got for v in row.values())


@given(
    records=st.lists(
        st.dictionaries(
            st.text(max_size=6), st.one_of(CELL, st.integers(), st.none(), st.booleans()), max_size=3
        ),
        max_size=5,
    ),
    junk=st.lists(st.sampled_from(["", "{", "[]", "1", '"x"', "{'a': 1}", "\x00", "﻿"]), max_size=2),
    newline=NEWLINES,
    encoding=ENCODINGS,
    suffix=st.sampled_from([".jsonl", ".json"]),
)
def test_json_lines_read_or_name_the_file(tmp_path_factory, records, junk, newline, encoding, suffix):
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + junk
    path = tmp_path_factory.mktemp("j") / f"data{suffix}"
    path.write_bytes(_encode(newline.join(lines), encoding))
    got = _read(path)
    if got is not None:
        assert all(isinstance(row, dict) for row in got)


@given(
    data=st.binary(max_size=400),
    suffix=SUFFIX,
    bom=st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE]),
)
def test_random_bytes_read_or_name_the_file(tmp_path_factory, data, suffix, bom):
    path = tmp_path_factory.mktemp("b") / f"data{suffix}"
    path.write_bytes(bom + data)
    _read(path)


@given(
    rows=st.lists(
        st.tuples(
            st.text(st.sampled_from('ab é,;"\t\n'), min_size=1, max_size=30), st.sampled_from(["pos", "neg"])
        ),
        min_size=1,
        max_size=8,
    ),
    bom=st.booleans(),
)
def test_a_clean_csv_round_trips(tmp_path_factory, rows, bom):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([("text", "label"), *rows])
    path = tmp_path_factory.mktemp("c") / "data.csv"
    path.write_text(buf.getvalue(), encoding="utf-8-sig" if bom else "utf-8")
    assert [(r["text"], r["label"]) for r in read_rows(path)] == rows
