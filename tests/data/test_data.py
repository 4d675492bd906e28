"""softprompt.data: built-in parsers on small files written here, splits, user data and its errors. Offline."""

from __future__ import annotations

import bz2
import csv
import dataclasses
import functools
import io
import json
import operator
import zipfile
from pathlib import Path

import pytest

from softprompt import assets
from softprompt.data import (
    builtin,
    facts,
    headlines,
    list_datasets,
    load_dataset,
    punctuation,
    rotten_tomatoes,
)
from softprompt.data.splits import group_split, random_split
from softprompt.errors import ConfigError, DataError

# ---------------------------------------------------------------- small source files


def write_reviews(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    writer.writerows([(c, t, m, "False") for c, t, m in rows])
    path.write_bytes(bz2.compress(buf.getvalue().encode()))
    return path


def many_reviews() -> list[tuple[str, str, str]]:
    rows = [("plot", "A man robs a bank.", "movie00")]
    for m in range(40):
        for r in range(3):
            label = "fresh" if (m + r) % 2 else "rotten"
            rows.append((label, f"Review {r} of movie {m}, it was fine.", f"movie{m:02d}"))
    rows.append(("fresh", "Review 0 of movie 7, it was fine.", "alias_of_7"))  # same film, second name
    rows.append(("rotten", "Only the alias has this one.", "alias_of_7"))
    return rows


QUESTIONS_WORDS = """\
: capital-common-countries
Athens Greece Baghdad Iraq
Athens Greece Paris France
: capital-world
Paris France Abuja Nigeria
: currency
Algeria dinar Japan yen
: city-in-state
Chicago Illinois Glendale Arizona
Glendale California Houston Texas
: family
boy girl brother sister
"""


def write_news(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    cols = ["article_id", "publish_date", "article_source_link", "title", "subtitle", "text"]
    writer = csv.DictWriter(buf, cols)
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow(
            {"article_id": i, "publish_date": "2017", "article_source_link": "x", "subtitle": "", **row}
        )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("NewsArticles.csv", buf.getvalue())
    return path


# ---------------------------------------------------------------- built-in parsers


def test_rotten_tomatoes_parse_drops_plot_maps_labels_and_repeats(tmp_path):
    src = write_reviews(tmp_path / "rt.csv.bz2", [
        ("plot", "Story.", "a"), ("fresh", "Great  fun.\n", "a"), ("rotten", "Dull.", "b"),
        ("fresh", "Great fun.", "c"),
    ])  # fmt: skip
    assert rotten_tomatoes.parse_reviews(src) == [
        {"text": "Great fun.", "label": "positive", "movie": "a"},
        {"text": "Dull.", "label": "negative", "movie": "b"},
    ]


def test_rotten_tomatoes_splits_never_share_a_movie(tmp_path):
    src = write_reviews(tmp_path / "rt.csv.bz2", many_reviews())
    splits = rotten_tomatoes.build(src)
    groups = rotten_tomatoes.movie_groups(rotten_tomatoes.read_rows(src))
    assert groups["alias_of_7"] == groups["movie07"]
    owners = [{groups[ex["movie"]] for ex in splits[s]} for s in ("train", "validation", "test")]
    assert (
        owners[0].isdisjoint(owners[1])
        and owners[0].isdisjoint(owners[2])
        and owners[1].isdisjoint(owners[2])
    )
    assert sum(map(len, splits.values())) == 121  # 120 + the alias's own review; the repeat is dropped
    assert all(len(splits[s]) >= 12 for s in ("validation", "test"))
    assert rotten_tomatoes.build(src) == splits


def test_facts_are_distinct_pairs_with_subject_and_object(tmp_path):
    src = tmp_path / "qw.txt"
    src.write_text(QUESTIONS_WORDS)
    got = {(f["relation"], f["subject"]): f["label"] for f in facts.parse_questions_words(src)}
    # Glendale lies in two states: dropped. The family section is no fact relation.
    assert got == {
        ("capital-of", "Greece"): "Athens",
        ("capital-of", "Iraq"): "Baghdad",
        ("capital-of", "France"): "Paris",
        ("capital-of", "Nigeria"): "Abuja",
        ("currency-of", "Algeria"): "dinar",
        ("currency-of", "Japan"): "yen",
        ("state-of", "Chicago"): "Illinois",
        ("state-of", "Houston"): "Texas",
    }
    example = next(f for f in facts.parse_questions_words(src) if f["subject"] == "France")
    assert example == {"subject": "France", "relation": "capital-of", "attribute": "capital", "text": "France",
                       "label": "Paris"}  # fmt: skip


def test_facts_split_by_subject_and_candidates_per_relation(tmp_path):
    lines = [": capital-world"] + [f"Cap{i} Land{i} Cap{i + 1} Land{i + 1}" for i in range(0, 40, 2)]
    lines += [": currency"] + [f"Land{i} cur{i % 5} Land{i + 1} cur{(i + 1) % 5}" for i in range(0, 40, 2)]
    src = tmp_path / "qw.txt"
    src.write_text("\n".join(lines) + "\n")
    splits = facts.build(src)
    subjects = [{f["subject"] for f in splits[s]} for s in ("train", "validation", "test")]
    assert all(a.isdisjoint(b) for i, a in enumerate(subjects) for b in subjects[i + 1 :])
    for s in splits.values():  # a country's capital and currency stay together
        assert {f["relation"] for f in s if f["subject"] == "Land3"} in (set(), {"capital-of", "currency-of"})
    spec = facts.complete_spec(facts.SPEC, splits)
    assert spec.relation_labels["currency-of"] == tuple(f"cur{i}" for i in range(5))
    assert len(spec.relation_labels["capital-of"]) == 40 and len(spec.labels) == 45


def test_headlines_parse_cleans_truncates_and_drops(tmp_path):
    long_text = " ".join(f"w{i}" for i in range(300))
    src = write_news(tmp_path / "news.zip", [
        {"title": "Big  news", "text": long_text},
        {"title": "", "text": long_text + " other"},                 # no title
        {"title": "Caption", "text": "A photo of a cat."},           # under MIN_WORDS
        {"title": "Big news", "text": "different " * 30},            # repeated title
        {"title": "Fine\ufffd", "text": "Text\ufffd  with\nbreaks " * 10},
    ])  # fmt: skip
    got = headlines.parse_articles(src)
    assert [a["target"] for a in got] == ["Big news", "Fine"]
    assert got[0]["text"].split() == [f"w{i}" for i in range(headlines.MAX_WORDS)]
    assert got[1]["text"] == " ".join(["Text with breaks"] * 10)


# ---------------------------------------------------------------- punctuation


@pytest.mark.parametrize("sentence", [
    "A three-hour cinema master class.",
    "Although it's a bit smug, this documentary engages your brain. Is it 1967, Marker?",
    "I loved it, I think. Does a well-made film care?",
    "é, Über and 20th Century.",
])  # fmt: skip
def test_punctuation_round_trip(sentence):
    ex = punctuation.to_example(sentence)
    assert ex is not None
    assert all((t == t.lower() and t.isalnum()) or "'" in t or "-" in t for t in ex["tokens"])
    assert set(ex["tags"]) <= set(punctuation.TAGS)
    assert punctuation.restore(ex["tokens"], ex["tags"]) == sentence
    assert ex["text"] == " ".join(ex["tokens"])


def test_punctuation_tags_are_exact():
    ex = punctuation.to_example("Hello, world. Is it Good?")
    assert ex["tokens"] == ["hello", "world", "is", "it", "good"]
    assert ex["tags"] == ["CAP+COMMA", "PERIOD", "CAP", "O", "CAP+QUESTION"]


@pytest.mark.parametrize(
    "sentence", ["Fun -- mostly.", "It's on TV.", "Wow!", '"Quoted" text.', "Spider-Man.", "End,,"]
)
def test_punctuation_skips_what_tags_cannot_restore(sentence):
    assert punctuation.to_example(sentence) is None


def test_punctuation_follows_rotten_tomatoes_splits(tmp_path):
    src = write_reviews(tmp_path / "rt.csv.bz2", many_reviews())
    rt, punct = rotten_tomatoes.build(src), punctuation.build(src)
    for s in rt:
        assert [ex["text"] for ex in punct[s]] == [punctuation.to_example(r["text"])["text"] for r in rt[s]]


# ---------------------------------------------------------------- splits


def test_group_split_is_disjoint_complete_and_seeded():
    examples = [{"g": i // 4, "i": i} for i in range(200)]
    a = group_split(examples, lambda ex: ex["g"], seed=0)
    assert sorted(ex["i"] for s in a.values() for ex in s) == list(range(200))
    assert [len(a[s]) for s in ("train", "validation", "test")] == [160, 20, 20]
    assert group_split(examples, lambda ex: ex["g"], seed=0) == a
    assert group_split(examples, lambda ex: ex["g"], seed=1)["test"] != a["test"]


def test_random_split_sizes():
    parts = random_split(list(range(50)), seed=3)
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [40, 5, 5]
    assert sorted(functools.reduce(operator.iadd, parts.values(), [])) == list(range(50))


# ---------------------------------------------------------------- built-ins through load_dataset


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Built-ins read small files from a fake package folder; the cache goes to tmp_path."""
    monkeypatch.setenv("SOFTPROMPT_HOME", str(tmp_path / "cache"))
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    write_reviews(pkg / rotten_tomatoes.SOURCE, many_reviews())
    (pkg / facts.SOURCE).parent.mkdir(parents=True)
    (pkg / facts.SOURCE).write_text(QUESTIONS_WORDS)
    (pkg / headlines.SOURCE).parent.mkdir(parents=True)
    write_news(pkg / headlines.SOURCE, [{"title": f"T{i}", "text": f"article {i} " * 20} for i in range(30)])
    monkeypatch.setattr(assets, "ensure_package", lambda name, version, **kw: pkg)
    return tmp_path / "cache"


def test_builtin_parsed_once_then_read_from_cache(fake_sources, monkeypatch):
    first = load_dataset("rotten-tomatoes")
    assert (fake_sources / "data" / "rotten-tomatoes-v1.json").is_file()
    assert [p.name for p in (fake_sources / "data").iterdir()] == ["rotten-tomatoes-v1.json"]

    def no_parse(path):
        raise AssertionError("parsed again")

    b = builtin.BUILTINS["rotten-tomatoes"]
    monkeypatch.setitem(builtin.BUILTINS, "rotten-tomatoes", dataclasses.replace(b, build=no_parse))
    second = load_dataset("rotten-tomatoes")
    assert second.splits() == first.splits() and second.spec == first.spec
    assert first.spec.labels == ("negative", "positive")


def test_builtins_load_with_specs(fake_sources):
    for spec in list_datasets():
        data = load_dataset(spec.name)
        assert data.spec.name == spec.name and data.train
        assert all(spec.label_field in ex for s in data.splits().values() for ex in s)
    probe = load_dataset("facts").spec
    assert probe.relation_labels["state-of"] == ("Illinois", "Texas") and "Paris" in probe.labels


def test_rotten_tomatoes_templates_have_slots_and_verbalizers():
    spec = rotten_tomatoes.SPEC
    assert len(spec.default_templates) >= 10 and len(set(spec.default_templates)) == len(
        spec.default_templates
    )
    for template in spec.default_templates:
        assert "{text}" in template and template.count("{mask}") == 1
        assert set(spec.verbalizer_for(template)) == set(spec.labels)
    assert spec.verbalizer_for(spec.default_templates[0]) == {
        "positive": ["positive"],
        "negative": ["negative"],
    }
    assert spec.verbalizer_for("{text} It was {mask}.") == {"positive": ["great"], "negative": ["terrible"]}


def test_limit_samples_train_by_seed_and_fixes_eval(fake_sources):
    full = load_dataset("rotten-tomatoes")
    a, b = load_dataset("rotten-tomatoes", limit=5, seed=0), load_dataset("rotten-tomatoes", limit=5, seed=1)
    assert len(a.train) == 5 and a.train != b.train
    assert a.test == b.test == full.test[:5]
    assert all(ex in full.train for ex in a.train + b.train)


# ---------------------------------------------------------------- user data


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_user_jsonl_field_mapping_and_split(tmp_path):
    rows = [{"review_body": f"text {i}", "stars": i % 5 + 1, "extra": 0} for i in range(50)]
    src = write_jsonl(tmp_path / "reviews.jsonl", rows)
    data = load_dataset(src, fields={"text": "review_body", "label": "stars"}, seed=7)
    assert [len(s) for s in (data.train, data.validation, data.test)] == [40, 5, 5]
    assert data.train[0].keys() == {"text", "label"}
    assert data.spec.task == "classification" and data.spec.labels == ("1", "2", "3", "4", "5")
    assert data.spec.text_fields == ("text",) and data.spec.label_field == "label"
    assert (
        load_dataset(src, fields={"text": "review_body", "label": "stars"}, seed=7).splits() == data.splits()
    )
    assert load_dataset(src, fields={"text": "review_body", "label": "stars"}, seed=8).test != data.test


def test_user_csv_with_label_mapping_and_generation(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("body,y,title\n" + "".join(f"row {i},{i % 2},t{i}\n" for i in range(20)))
    data = load_dataset(src, fields={"text": "body", "label": "y"}, labels={0: "negative", 1: "positive"})
    assert data.spec.labels == ("negative", "positive")
    assert {ex["label"] for s in data.splits().values() for ex in s} == {"negative", "positive"}
    gen = load_dataset(src, fields={"text": "body", "target": "title"})
    assert gen.spec.task == "generation" and gen.spec.labels is None


def test_user_saved_datasetdict_uses_its_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})  # fmt: skip

    def part(n: int):
        return datasets.Dataset.from_dict(
            {"sentence": [f"s{i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=features
        )

    datasets.DatasetDict({"train": part(20), "validation": part(4), "test": part(6)}).save_to_disk(
        tmp_path / "dd"
    )
    data = load_dataset(tmp_path / "dd", fields={"text": "sentence", "label": "label"})
    assert [len(s) for s in (data.train, data.validation, data.test)] == [20, 4, 6]
    assert data.spec.labels == ("neg", "pos")


def test_user_folder_of_split_files_carves_missing_validation(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"text": f"a{i}", "label": "xy"[i % 2]} for i in range(30)])
    write_jsonl(tmp_path / "test.jsonl", [{"text": f"b{i}", "label": "y"} for i in range(7)])
    data = load_dataset(tmp_path)
    assert len(data.test) == 7 and len(data.validation) == 3 and len(data.train) == 27


def test_labeling_user_data(tmp_path):
    src = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": ["a", "b"], "tags": ["O", "B"]}] * 10)
    data = load_dataset(src)
    assert data.spec.task == "labeling" and data.spec.labels == ("B", "O") and data.train[0]["text"] == "a b"


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda d: d / "nope.jsonl", {}, r"no such file or folder: .*nope\.jsonl"),
    (lambda d: d / "empty.csv", {}, r"empty\.csv: no examples"),
    (lambda d: d / "good.jsonl", {"fields": {"text": "body", "label": "stars"}},
     r"field 'text' is mapped to column 'body', which is not in the data \(columns: review_body, stars\)"),
    (lambda d: d / "blank.jsonl", {"fields": {"text": "review_body", "label": "stars"}},
     r"row 3 \(line 3\) has an empty 'review_body' value"),
    (lambda d: d / "good.jsonl", {"fields": {"text": "review_body", "label": "stars"}, "labels": ["1", "2"]},
     r"row 3 \(line 3\) has label '3', not one of labels \['1', '2'\]"),
    (lambda d: "rotten-tomatos", {}, r"unknown dataset 'rotten-tomatos'; built-in datasets: rotten-tomatoes, facts"),
    (lambda d: d / "bad.jsonl", {}, r"line 2 is not valid JSON"),
])  # fmt: skip
def test_user_data_errors_name_the_problem(tmp_path, make, kwargs, message):
    (tmp_path / "empty.csv").write_text("")
    write_jsonl(tmp_path / "good.jsonl", [{"review_body": f"t{i}", "stars": i + 1} for i in range(4)])
    write_jsonl(
        tmp_path / "blank.jsonl", [{"review_body": "ok", "stars": 1}] * 2 + [{"review_body": " ", "stars": 1}]
    )
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "b"}\n{"text": \n')
    with pytest.raises(DataError, match=message) as info:
        load_dataset(make(tmp_path), **kwargs)
    assert "\n" not in str(info.value)


def test_builtin_rejects_user_options():
    with pytest.raises(ConfigError, match="fields apply to your own data"):
        load_dataset("rotten-tomatoes", fields={"text": "x"})
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("rotten-tomatoes", limit=0)


# ---------------------------------------------------------------- the real files, when cached


REAL_SIZES = {
    "rotten-tomatoes": (10168, 1286, 1298),
    "facts": (85, 21, 106),
    "headlines": (2930, 366, 366),
    "punctuation": (8004, 1000, 998),
}


@pytest.mark.parametrize("name", list(REAL_SIZES))
def test_real_builtin_sizes(name):
    b = builtin.BUILTINS[name]
    paths = assets._environment_paths() + [str(assets.cache_root() / "packages" / "-".join(b.package))]
    folder = assets._find_installed(*b.package, paths)
    if folder is None:
        pytest.skip(f"{'=='.join(b.package)} is not installed or cached")
    splits = b.build(folder / b.source)
    assert tuple(len(splits[s]) for s in ("train", "validation", "test")) == REAL_SIZES[name]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope.jsonl", r"no such file: .*nope\.jsonl"),
        (lambda d: (d / "empty.jsonl").write_text("\n") and d / "empty.jsonl", r"empty\.jsonl: no examples"),
        (
            lambda d: (d / "bad.jsonl").write_text('{"text": "a"}\n[1]\n') and d / "bad.jsonl",
            r"line 2 is not a JSON object",
        ),
        (
            lambda d: (d / "s.json").write_text('{"train": [{"text": "a"}]}') and d / "s.json",
            r"holds splits \['train'\]",
        ),
    ],
)
def test_read_rows_names_the_file_and_the_problem(tmp_path, make, message):
    from softprompt.data.readers import read_rows

    with pytest.raises(DataError, match=message):
        read_rows(make(tmp_path))


def test_read_rows_reads_jsonl_and_csv(tmp_path):
    from softprompt.data.readers import read_rows

    (tmp_path / "a.jsonl").write_text('{"text": "good"}\n\n{"text": "bad"}\n')
    (tmp_path / "a.csv").write_text("text,label\ngood,pos\n")
    assert read_rows(tmp_path / "a.jsonl") == [{"text": "good"}, {"text": "bad"}]
    assert read_rows(tmp_path / "a.csv") == [{"text": "good", "label": "pos"}]
