"""The user's data files as a new user writes them: encodings, BOMs, quoting, dialects, and what is refused
(each refusal names the file, the line or key, and what is accepted)."""

import json

import pytest

from softprompt.data import load_dataset
from softprompt.data.readers import read_rows
from softprompt.errors import DataError


def reviews_csv(n: int = 20) -> str:
    return "text,label\n" + "".join(f"review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(n))


def test_utf8_bom_csv_just_works(tmp_path):
    src = tmp_path / "excel.csv"
    src.write_bytes(b"\xef\xbb\xbf" + reviews_csv().encode())
    data = load_dataset(src)
    assert data.spec.labels == ("neg", "pos") and set(data.train[0]) == {"text", "label"}
    assert read_rows(src)[0] == {"text": "review 0", "label": "neg"}


def test_utf16_with_bom_is_read(tmp_path):
    src = tmp_path / "unicode.tsv"
    src.write_bytes("text\tlabel\ncafé crème\tpos\n".encode("utf-16"))  # Excel's "Unicode text"
    assert read_rows(src) == [{"text": "café crème", "label": "pos"}]


def test_utf16_without_bom_is_named(tmp_path):
    src = tmp_path / "nobom.csv"
    src.write_bytes("text,label\na,pos\n".encode("utf-16-le"))
    with pytest.raises(
        DataError, match=r"nobom\.csv: line 1 holds NUL characters \(UTF-16 without a byte-order"
    ):
        read_rows(src)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_file_names_line_byte_and_encodings(tmp_path, suffix):
    src = tmp_path / f"latin{suffix}"
    lines = ["text,label", "fine,pos", "caf\xe9,neg"] if suffix == ".csv" else [
        json.dumps({"text": "fine", "label": "pos"}), '{"text": "caf\xe9", "label": "neg"}']  # fmt: skip
    src.write_bytes("\n".join(lines).encode("cp1252"))
    line, byte = (3, 4) if suffix == ".csv" else (2, 14)
    with pytest.raises(DataError) as e:
        read_rows(src)
    msg = str(e.value)
    assert f"latin{suffix}: line {line}, byte {byte} (0xe9) is not valid UTF-8" in msg
    assert "accepted encodings: UTF-8" in msg and "Windows-1252" in msg and "\n" not in msg


def test_quoting_semicolons_and_strings_kept_as_written(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text('text,label\n"a, quoted\nreview",pos\nNA,null\n')
    assert read_rows(src) == [{"text": "a, quoted\nreview", "label": "pos"}, {"text": "NA", "label": "null"}]
    euro = tmp_path / "euro.csv"
    euro.write_text("text;label\nbon;pos\n")
    assert read_rows(euro) == [{"text": "bon", "label": "pos"}]


def test_separator_follows_the_header_line(tmp_path):
    tabs = tmp_path / "tabs.csv"  # a TSV saved under .csv
    tabs.write_text("text\tlabel\na, b\tpos\n")
    commas = tmp_path / "commas.tsv"
    commas.write_text("text,label\nfine,neg\n")
    assert read_rows(tabs) == [{"text": "a, b", "label": "pos"}]
    assert read_rows(commas) == [{"text": "fine", "label": "neg"}]


def test_pandas_index_column_is_dropped(tmp_path):
    import pandas as pd

    src = tmp_path / "frame.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(src)  # writes an unnamed index column
    assert read_rows(src) == [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("wide.csv", "text,label\na,pos\nb,neg,extra\n", r"wide\.csv: Expected 2 fields in line 3, saw 3"),
        ("open.csv", 'text,label\n"never closed,pos\n', r"open\.csv: a quoted field is never closed"),
        ("dup.csv", "text,text,label\na,b,pos\n", r"dup\.csv: line 1: column 'text' appears twice"),
        (
            "doc.json",
            '[{"text": "a"},\n {"text": }]',
            r"doc\.json: not valid JSON at line 2, column 11 \(Expecting value\)",
        ),
        ("cols.json", '{"text": ["a"], "label": ["x"]}', r"key\(s\) 'text', 'label' are not split names"),
        ("num.json", "42", r"num\.json: holds a JSON int; give a list of objects"),
        ("items.json", '[{"text": "a"}, 3]', r"items\.json: item 1 is a int, expected a JSON object"),
        ("arr.jsonl", '{"text": "a"}\n\n[1, 2]\n', r"arr\.jsonl: line 3 is not a JSON object \(got list\)"),
        ("data.txt", "hello", r"unsupported file type '\.txt'; accepted: \.jsonl, \.json, \.csv, \.tsv"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, message):
    src = tmp_path / name
    src.write_text(content)
    with pytest.raises(DataError, match=message):
        read_rows(src)


def test_json_splits_with_an_unknown_split_name_are_refused(tmp_path):
    src = tmp_path / "s.json"
    src.write_text(
        json.dumps({"train": [{"text": "a", "label": "x"}], "extra": [{"text": "b", "label": "y"}]})
    )
    with pytest.raises(
        DataError, match=r"key\(s\) 'extra' are not split names \(accepted: train, validation"
    ):
        load_dataset(src)


def test_one_class_training_set_names_the_label(tmp_path):
    from softprompt.data import check_classes

    src = tmp_path / "one.csv"
    src.write_text("review,stars\n" + "".join(f"text {i},5\n" for i in range(20)))
    data = load_dataset(src, fields={"text": "review", "label": "stars"})  # scoring a one-class file is fine
    assert data.spec.labels == ("5",)
    with pytest.raises(DataError, match=r"one\.csv: every training example has label '5' \(column 'stars'\)"):
        check_classes(data, str(src), "stars")


def test_row_errors_give_the_file_line(tmp_path):
    src = tmp_path / "gaps.jsonl"
    src.write_text('{"text": "a", "label": "x"}\n\n\n{"text": "", "label": "y"}\n')
    with pytest.raises(DataError, match=r"gaps\.jsonl: row 2 \(line 4\) has an empty 'text' value"):
        load_dataset(src)
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"text": {"title": "a"}, "label": "x"}\n')
    with pytest.raises(DataError, match=r"row 1 \(line 1\): 'text' is a JSON dict; accepted: a string"):
        load_dataset(nested)
    csv = tmp_path / "blank.csv"
    csv.write_text("text,label\na,x\n\nb,\n")
    with pytest.raises(DataError, match=r"blank\.csv: row 2 \(line 4\) has an empty 'label' value"):
        load_dataset(csv)


def test_folder_with_misnamed_split_files_lists_them(tmp_path):
    (tmp_path / "training.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(DataError, match=r"holds training\.jsonl \(name them train\.\*, validation\.\*, test"):
        load_dataset(tmp_path)


def test_no_answer_column_says_how_to_map_one_on_the_command_line(tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_text('{"review": "a", "stars": 5}\n')
    with pytest.raises(DataError, match=r"cannot tell the task.*fields=\{'label': COLUMN"):
        load_dataset(src)
