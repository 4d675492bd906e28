"""Deterministic train / validation / test splits.

Order is decided by SHA-256 of ``(seed, key)``, not by ``random``: the same seed gives the same split on
every Python version and platform.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable

SPLITS = ("train", "validation", "test")


def _rank(seed: int, key: Hashable) -> str:
    return hashlib.sha256(f"{seed}\x00{key!r}".encode()).hexdigest()


def stable_shuffle(items: list, seed: int) -> list:
    """``items`` in a seeded order that depends only on ``seed`` and each item's position."""
    order = sorted(range(len(items)), key=lambda i: _rank(seed, i))
    return [items[i] for i in order]


def group_split(
    examples: list[dict],
    group: Callable[[dict], Hashable],
    seed: int,
    held_out: float = 0.1,
    validation: float | None = None,
) -> dict[str, list[dict]]:
    """Split so that no group (e.g. a movie) has examples in two splits.

    Groups are visited in a seeded order; test takes whole groups until it holds at least
    ``round(held_out * n)`` examples, then validation until it holds ``round(validation * n)``, and train
    takes the rest.
    Within a split, examples are shuffled (seeded).

    Args:
        examples: In a stable order (e.g. file order).
        group: Maps an example to its group key.
        seed: Split seed.
        held_out: Fraction of examples for test (and for validation, unless ``validation`` is given).
        validation: Fraction of examples for validation; default ``held_out``.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    members: dict[Hashable, list[int]] = {}
    for i, ex in enumerate(examples):
        members.setdefault(group(ex), []).append(i)
    target = {
        "test": round(held_out * len(examples)),
        "validation": round((held_out if validation is None else validation) * len(examples)),
    }
    split_of_group: dict[Hashable, str] = {}
    counts = {"test": 0, "validation": 0}
    for key in sorted(members, key=lambda k: _rank(seed, k)):
        name = next((s for s in ("test", "validation") if counts[s] < target[s]), "train")
        split_of_group[key] = name
        if name != "train":
            counts[name] += len(members[key])
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for i in sorted(range(len(examples)), key=lambda i: _rank(seed, ("example", i))):
        out[split_of_group[group(examples[i])]].append(examples[i])
    return out


def random_split(examples: list[dict], seed: int, held_out: float = 0.1) -> dict[str, list[dict]]:
    """Split examples 80/10/10 (by default), each example its own group."""
    indexed = [{"i": i} for i in range(len(examples))]
    parts = group_split(indexed, lambda ex: ex["i"], seed, held_out)
    return {s: [examples[ex["i"]] for ex in part] for s, part in parts.items()}
