"""``/v1/classify`` with ``"prompt": ["a", "b", ...]``: a prompt ensemble. Each member is one engine request,
so the scheduler scores every member's rows in shared mixed-prompt batches; the members' label probabilities
(softmax of their label scores) are combined by mean (``"combine": "vote"``: the majority label, ties to the
higher mean probability)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import Request

    from softprompt.serve.app import Rows
    from softprompt.serve.schemas import ClassifyBody


async def classify(rows: Rows, request: Request, texts: list[str], body: ClassifyBody) -> list[dict] | None:
    """Score ``texts`` with every member of ``body`` (one engine request each, batched by the scheduler) and
    combine them; None when the client went away."""
    from softprompt.serve import responses as R

    try:
        members = members_of(body)
    except ConfigError as e:
        raise R.api_error(e, "prompt") from None
    try:
        rows.start([lambda s, m=m: rows.engine.classification(texts, m, sink=s) for m in members])
    except Exception as e:
        raise R.api_error(e, "input") from None
    scores: dict[int, list] = {}
    async for i, ev in rows.events(request):
        if ev["type"] == "error":
            raise R.api_error(ev["error"], "input")
        scores[i] = ev["scores"]
        if len(scores) == len(members):
            labels = [r.entry.labels for r in rows.reqs]
            try:
                return combine(members, labels, [scores[k] for k in range(len(members))], body.combine)
            except ConfigError as e:
                raise R.api_error(e, "prompt") from None
    return None


def members_of(body: ClassifyBody) -> list[str]:
    """The served prompts a classify request scores with: ``prompt`` when given (a name or a list), else
    ``model``."""
    prompt = getattr(body, "prompt", None)
    if prompt is None:
        return [body.model]
    names = [prompt] if isinstance(prompt, str) else list(prompt)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"prompt={names!r}: give distinct served prompt names (at least one)")
    return names


def _probabilities(scores: list[float]) -> list[float]:
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    return [e / sum(exp) for e in exp]


def combine(
    members: list[str], labels: list[list[str]], scores: list[list[list[float]]], how: str
) -> list[dict]:
    """The response rows: one member's raw label scores, or an ensemble's mean probabilities (with its members').

    Args:
        members: served prompt names; labels: each member's labels; scores: per member, per text, label scores.
        how: ``mean`` or ``vote``.
    """
    if any(lab != labels[0] for lab in labels[1:]):
        bad = next(m for m, lab in zip(members, labels) if lab != labels[0])
        raise ConfigError(
            f"prompt {bad!r} classifies into {labels[members.index(bad)]}, {members[0]!r} into {labels[0]}"
        )
    names = labels[0]
    if len(members) == 1:
        return [
            {"index": i, "label": names[max(range(len(s)), key=s.__getitem__)], "scores": dict(zip(names, s))}
            for i, s in enumerate(scores[0])
        ]
    out = []
    for i in range(len(scores[0])):
        probs = [_probabilities(member[i]) for member in scores]  # (M, C)
        mean = [sum(col) / len(probs) for col in zip(*probs)]
        votes = [sum(max(range(len(p)), key=p.__getitem__) == c for p in probs) for c in range(len(names))]
        rank = [(mean[c],) if how == "mean" else (votes[c], mean[c]) for c in range(len(names))]
        out.append(
            {
                "index": i,
                "label": names[max(range(len(names)), key=rank.__getitem__)],
                "scores": dict(zip(names, mean)),
                "votes": dict(zip(names, votes)),
                "members": {m: dict(zip(names, p)) for m, p in zip(members, probs)},
            }
        )
    return out
