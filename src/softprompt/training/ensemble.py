"""Prompt ensembles in one forward (Lester et al. 2021, section 6): every input scored under N prompts of one
frozen backbone in one mixed batch (rows = inputs x prompts), the members' label probabilities combined.

    members = [(name_a, task_a), (name_b, task_b)]          # prompts in one model's bank, each with its task
    result = softprompt.predict_ensemble(model, members, [{"text": "a gorgeous film"}])
    result.predictions, result.probabilities, result.members  # combined labels / probabilities; per member

Members whose tasks read the input the same way (the same template and label words) share each forward; a
member with its own template or a trained head is scored in its own forward (its rows cannot share a batch's
label scoring). Each member's probabilities are those its own ``predict`` gives (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from softprompt.errors import ConfigError, check_choice, check_range

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.tasks.base import Task

COMBINE = ("mean", "vote")


@dataclass(frozen=True)
class EnsembleResult:
    """Combined and per-member label probabilities of an ensemble, per example."""

    labels: list[str]
    """The label names, in score order (shared by every member)."""
    predictions: list[str]
    """Per example, the combined label."""
    probabilities: list[dict[str, float]]
    """Per example, label -> mean of the members' probabilities."""
    members: dict[str, list[dict[str, float]]]
    """Member name -> per example, label -> that member's own probability."""
    votes: list[dict[str, int]]
    """Per example, label -> how many members chose it."""


def labels_of(task: Task) -> list[str]:
    """The label names a classification task scores, in order (refused for other tasks)."""
    verbalizer = getattr(task, "verbalizer", None)
    labels = getattr(verbalizer, "labels", None) or getattr(task, "labels", None)
    score = getattr(task, "scores", None) or getattr(task, "logits", None)
    if not labels or score is None or getattr(task, "tags", None) is not None:
        raise ConfigError("a prompt ensemble combines classification prompts; this prompt's task is not one")
    return list(labels)


def _shares_forward(a: Task, b: Task) -> bool:
    """Whether ``b``'s rows can be scored by ``a``'s label scoring: the same template and label words."""
    from softprompt.tasks.classify import VerbalizerTask

    if not (isinstance(a, VerbalizerTask) and isinstance(b, VerbalizerTask)):
        return a is b
    return a.template.source == b.template.source and a.verbalizer == b.verbalizer and a.kind == b.kind


def _groups(members: Sequence[tuple[str, Task]]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i, (_, task) in enumerate(members):
        home = next((g for g in groups if _shares_forward(members[g[0]][1], task)), None)
        (home.append(i) if home is not None else groups.append([i]))
    return groups


def ensemble_probabilities(
    model: PromptedModel, members: Sequence[tuple[str, Task]], examples: list[dict], batch_size: int = 16
) -> torch.Tensor:
    """(M, N, C) each member's label probabilities for each example; a chunk of ``batch_size`` inputs is one
    forward of ``batch_size x members`` rows per group of members that share a template and label words."""
    from softprompt.training.evaluation import eval_mode

    out = torch.empty(len(members), len(examples), len(labels_of(members[0][1])))
    for group in _groups(members):
        lead = members[group[0]][1]
        score: Any = getattr(lead, "scores", None) or getattr(lead, "logits", None)
        assert score is not None  # labels_of refused tasks without label scoring
        with eval_mode(model, lead):
            for i in range(0, len(examples), batch_size):
                chunk = examples[i : i + batch_size]
                encoded, rows = [], []
                for m in group:
                    name, task = members[m]
                    batch = task.collate(chunk)
                    encoded.append(batch)
                    rows += [name] * len(chunk)
                merged = _merge(encoded)
                probs = score(model, merged, rows).float().softmax(-1).cpu()  # (G * B, C)
                out[group, i : i + len(chunk)] = probs.view(len(group), len(chunk), -1)
    return out


def _merge(batches: list[dict]) -> dict:
    """One batch from the members' collated batches (row blocks in member order)."""
    if len(batches) == 1:
        return batches[0]
    if "encoded" in batches[0]:
        return {"encoded": [e for b in batches for e in b["encoded"]], "labels": None}
    raise ConfigError(
        "members with a trained head each score in their own forward"
    )  # _groups keeps them apart


def predict_ensemble(
    model: PromptedModel,
    members: Sequence[tuple[str, Task]],
    examples: list[dict],
    *,
    combine: Literal["mean", "vote"] = "mean",
    batch_size: int = 16,
) -> EnsembleResult:
    """Score ``examples`` under every member prompt in shared forwards and combine them.

    Args:
        model: the ``PromptedModel`` holding every member prompt in its bank.
        members: (prompt name, its task) per member; the tasks must classify into the same labels.
        examples: inputs (dicts with the tasks' fields).
        combine: ``mean``: the label of highest mean probability; ``vote``: the label most members chose
            (ties to the higher mean probability).
        batch_size: inputs per forward (each forward holds ``batch_size`` x members rows).

    Raises:
        ConfigError: no members, repeated names, members with different labels, or a bad ``combine``.
    """
    check_choice("combine", combine, COMBINE)
    check_range("batch_size", batch_size, low=1)
    if not members:
        raise ConfigError("an ensemble needs at least one prompt")
    names = [n for n, _ in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"ensemble members must be distinct prompts; got {names}")
    labels = labels_of(members[0][1])
    for name, task in members[1:]:
        if labels_of(task) != labels:
            raise ConfigError(
                f"ensemble member {name!r} has labels {labels_of(task)}; {names[0]!r} has {labels} "
                "(members must classify into the same labels, in the same order)"
            )
    probs = ensemble_probabilities(model, members, examples, batch_size)  # (M, N, C)
    mean = probs.mean(0)  # (N, C)
    counts = torch.nn.functional.one_hot(probs.argmax(-1), len(labels)).sum(0)  # (N, C)
    pick = mean.argmax(-1) if combine == "mean" else (counts + mean * 0.5).argmax(-1)  # mean < 1 breaks ties
    table = lambda row: dict(zip(labels, map(float, row)))  # noqa: E731
    return EnsembleResult(
        labels=labels,
        predictions=[labels[k] for k in pick.tolist()],
        probabilities=[table(r) for r in mean.tolist()],
        members={n: [table(r) for r in probs[m].tolist()] for m, n in enumerate(names)},
        votes=[dict(zip(labels, r)) for r in counts.tolist()],
    )
