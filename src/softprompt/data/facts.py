"""LAMA-style fact probing built from gensim's word-analogy file ``questions-words.txt``.

Each analogy line ``a b c d`` of a section holds two pairs, ``(a, b)`` and ``(c, d)``. The distinct pairs of
four sections become facts ``subject --relation--> object``:

=========================  ============  =========  ========
section                    relation      subject    object
=========================  ============  =========  ========
capital-common-countries   capital-of    b country  a city
capital-world              capital-of    b country  a city
currency                   currency-of   a country  b currency
city-in-state              state-of      a city     b state
=========================  ============  =========  ========
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from softprompt.data.spec import TaskSpec
from softprompt.data.splits import group_split
from softprompt.errors import DataError

PACKAGE = ("gensim", "4.4.0")
SOURCE = "test/test_data/questions-words.txt"

# section -> (relation, index of the subject in a pair, attribute word for generic templates)
SECTIONS = {
    "capital-common-countries": ("capital-of", 1, "capital"),
    "capital-world": ("capital-of", 1, "capital"),
    "currency": ("currency-of", 0, "currency"),
    "city-in-state": ("state-of", 0, "state"),
}

RELATION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital-of": (
        "The capital of {subject} is {mask}.",
        "{subject}'s capital city is {mask}.",
        "The government of {subject} sits in its capital, {mask}.",
        "Q: What is the capital of {subject}?\nA: {mask}",
    ),
    "currency-of": (
        "The currency of {subject} is the {mask}.",
        "In {subject}, people pay with the {mask}.",
        "{subject}'s official currency is the {mask}.",
        "Q: What is the currency of {subject}?\nA: the {mask}",
    ),
    "state-of": (
        "{subject} is a city in the state of {mask}.",
        "The city of {subject} lies in the U.S. state of {mask}.",
        "{subject} is located in {mask}.",
        "Q: Which U.S. state is {subject} in?\nA: {mask}",
    ),
}

SPEC = TaskSpec(
    name="facts",
    task="probing",
    text_fields=("subject", "attribute"),
    label_field="label",
    labels=None,  # filled from the data: every object of every relation
    default_templates=("The {attribute} of {subject} is {mask}.",),
    relation_templates=RELATION_TEMPLATES,
    description="Capital, currency and U.S.-state facts from gensim 4.4.0's questions-words.txt.",
)


def parse_questions_words(path: str | Path) -> list[dict]:
    """Distinct facts of the capital / currency / city-in-state sections, in first-seen order.

    A subject with two objects for one relation (``Glendale``: Arizona and California) is dropped, since
    precision@1 cannot score it. Capitalization is kept as in the file.

    Returns:
        ``{"subject", "relation", "attribute", "text" (= subject), "label" (= object)}`` dicts.
    """
    objects: dict[tuple[str, str], list[str]] = {}
    attributes: dict[str, str] = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            if section not in SECTIONS or not line.strip():
                continue
            words = line.split()
            if len(words) != 4:
                raise DataError(f"{path}:{lineno}: expected 4 words, found {len(words)}: {line.strip()!r}")
            relation, subj, attribute = SECTIONS[section]
            attributes[relation] = attribute
            for pair in (words[:2], words[2:]):
                found = objects.setdefault((relation, pair[subj]), [])
                if pair[1 - subj] not in found:
                    found.append(pair[1 - subj])
    return [
        {"subject": s, "relation": r, "attribute": attributes[r], "text": s, "label": objs[0]}
        for (r, s), objs in objects.items()
        if len(objs) == 1
    ]


TEST, VALIDATION = 0.5, 0.1
"""Test takes half of the 212 facts (106), so P@1 is measured on more than 100 held-out facts; a prompt has
few parameters, and 85 training facts are enough to move it. Validation keeps 21 for model selection."""

CACHE_VERSION = 2
"""v1 was a 60/20/20 split (42 test facts)."""


def build(path: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """Fixed 40/10/50 splits grouped by subject: all facts about a subject (e.g. a country's capital and
    currency) lie in one split, so no test fact's subject was seen in training."""
    return group_split(
        parse_questions_words(path), lambda ex: ex["subject"], seed, held_out=TEST, validation=VALIDATION
    )


def complete_spec(spec: TaskSpec, splits: dict[str, list[dict]]) -> TaskSpec:
    """``spec`` with the candidate objects per relation (and all of them) taken from the data."""
    by_relation: dict[str, set[str]] = {}
    for examples in splits.values():
        for ex in examples:
            by_relation.setdefault(ex["relation"], set()).add(ex["label"])
    relation_labels = {r: tuple(sorted(objs)) for r, objs in sorted(by_relation.items())}
    labels = tuple(sorted(set().union(*by_relation.values())))
    return dataclasses.replace(spec, labels=labels, relation_labels=relation_labels)
