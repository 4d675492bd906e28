"""Classification tasks of prompts saved by ``softprompt train`` (their prompt.json records the task).

Rebuilt the way ``softprompt predict`` rebuilds them, by ``tasks.trained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.serve.store import Entry
    from softprompt.tasks.base import Task

CLASSIFYING = ("classification", "probing")


def build_task(
    model: PromptedModel, meta: dict, folder: Path, name: str
) -> tuple[Task, list[str]] | tuple[None, None]:
    """(task, label names) for a classification/probing prompt saved by ``softprompt train``, else (None, None).

    The task is rebuilt by ``tasks.trained`` exactly as ``softprompt predict`` rebuilds it, so scores agree.
    """
    spec_d = meta.get("spec")
    if (
        not spec_d
        or spec_d.get("task") not in CLASSIFYING
        or (model.info.kind == "encoder" and not meta["head"])
    ):
        return None, None
    from softprompt.tasks.trained import read_trained, trained_task

    task = trained_task(model, read_trained(folder), name, meta["head"])
    verbalizer = getattr(task, "verbalizer", None)
    labels = list(verbalizer.labels) if verbalizer is not None else list(getattr(task, "labels", []))
    return task, labels


def text_field(entry: Entry) -> str:
    """The example field a classify input fills (the template's first text field)."""
    return entry.meta["spec"]["text_fields"][0]


@torch.no_grad()
def scores(model: PromptedModel, entry: Entry, texts: list[str], rows: int = 64) -> torch.Tensor:
    """(B, C) label scores for ``texts`` with ``entry``'s prompt and task, ``rows`` texts per forward (CPU)."""
    task = entry.task
    assert task is not None  # (intake.classification refuses a prompt without one)
    fn = task.scores if hasattr(task, "scores") else getattr(task, "logits", None)
    assert fn is not None  # label words score with .scores, a head with .logits
    out = []
    for i in range(0, len(texts), rows):
        chunk = texts[i : i + rows]
        batch = task.collate([{text_field(entry): t} for t in chunk])
        out.append(fn(model, batch, [entry.key] * len(chunk)).float().cpu())
    return torch.cat(out)
