"""Classification tasks of prompts saved by ``softprompt train`` (their prompt.json records the task).

Rebuilt the way ``softprompt predict`` rebuilds them (commands/common.py ``load_trained``; commands sit above
this layer, so the few lines are repeated here).
"""

from __future__ import annotations

from pathlib import Path

import torch

from softprompt.errors import PromptFileError

CLASSIFYING = ("classification", "probing")


def build_task(model, meta: dict, folder: Path, virtual_tokens: int):
    """(task, label names) for a classification/probing prompt saved by ``softprompt train``, else (None, None)."""
    spec_d = meta.get("spec")
    if (
        not spec_d
        or spec_d.get("task") not in CLASSIFYING
        or (model.info.kind == "encoder" and not meta["head"])
    ):
        return None, None
    from softprompt.data import TaskSpec
    from softprompt.tasks import make_task

    template = meta.get("template")
    spec = TaskSpec(
        name=spec_d["name"],
        task=spec_d["task"],
        text_fields=tuple(spec_d["text_fields"]),
        label_field=spec_d["label_field"],
        labels=None if spec_d["labels"] is None else tuple(spec_d["labels"]),
        default_templates=(template,) if template else (),
    )
    task = make_task(
        model,
        spec,
        template=template,
        verbalizer=meta.get("verbalizer"),
        head=meta.get("task_head"),
        virtual_tokens=virtual_tokens,
        max_length=meta.get("max_length", 256),
    )
    modules = task.modules()
    if modules:
        if not meta["head"]:
            raise PromptFileError(f"{folder}: the task needs a trained head but prompt.safetensors has none")
        target = modules["head"] if list(modules) == ["head"] else torch.nn.ModuleDict(modules)
        try:
            target.load_state_dict(meta["head"])
        except RuntimeError as e:
            raise PromptFileError(
                f"{folder}: head tensors do not fit the task ({str(e).splitlines()[0]})"
            ) from None
        target.eval()
    verbalizer = getattr(task, "verbalizer", None)
    labels = list(verbalizer.labels) if verbalizer is not None else list(task.labels)
    return task, labels


def text_field(entry) -> str:
    """The example field a classify input fills (the template's first text field)."""
    return entry.meta["spec"]["text_fields"][0]


@torch.no_grad()
def scores(model, entry, texts: list[str], rows: int = 64) -> torch.Tensor:
    """(B, C) label scores for ``texts`` with ``entry``'s prompt and task, ``rows`` texts per forward (CPU)."""
    task = entry.task
    fn = task.scores if hasattr(task, "scores") else task.logits
    out = []
    for i in range(0, len(texts), rows):
        chunk = texts[i : i + rows]
        batch = task.collate([{text_field(entry): t} for t in chunk])
        out.append(fn(model, batch, [entry.key] * len(chunk)).float().cpu())
    return torch.cat(out)
