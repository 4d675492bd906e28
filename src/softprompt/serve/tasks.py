"""Classification tasks of prompts saved by ``softprompt train`` (their prompt.json records the task).

Rebuilt the way ``softprompt predict`` rebuilds them, by ``tasks.trained``. ``score_mixed`` scores the texts of
several prompts (any methods, any tasks) in one forward: each row is its own task's encoding with its own prompt
(virtual tokens at its template's slots or prepended, its prefix at attention time), and each task reads its
rows' scores off the shared output exactly as its own ``scores``/``logits`` reads them — single-token label
words from the next-token (causal) or mask-position (masked LM) logits, heads from the pooled hidden states.
Tasks the shared forward cannot read (multi-token label words, seq2seq backbones) are scored per prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from softprompt.tasks.base import pad_id, pad_rows
from softprompt.tasks.classify import VerbalizerTask
from softprompt.tasks.heads import HeadClassificationTask

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


def _shared(model, task) -> str | None:
    """How ``task``'s rows read a shared forward: "words" (one-token label words), "head", or None (own path)."""
    if model.info.kind == "seq2seq":
        return None
    if isinstance(task, VerbalizerTask) and task.single:
        return "words"
    return "head" if isinstance(task, HeadClassificationTask) else None


def _rows(entry, texts: list[str]) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Each text's token ids, soft-token positions and answer index, as ``entry``'s task encodes it."""
    task, field = entry.task, text_field(entry)
    batch = task.collate([{field: t} for t in texts])
    if "encoded" in batch:  # a verbalizer task: template encodings
        enc = batch["encoded"]
        soft = [list(e.soft_positions) if task.template.num_soft else [] for e in enc]
        return [list(e.input_ids) for e in enc], soft, [e.answer_index or 0 for e in enc]
    ids = [row[m.bool()].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    return ids, [[] for _ in ids], [0 for _ in ids]


@torch.no_grad()
def score_mixed(
    model: PromptedModel, jobs: list[tuple[Entry, list[str]]], rows: int = 64
) -> list[torch.Tensor]:
    """(n_i, C_i) label scores of each job (entry, texts): every job a shared forward can read in one forward
    (``rows`` texts at most per forward), the others through their task's own scoring (CPU tensors)."""
    out: list[torch.Tensor | None] = [None] * len(jobs)
    shared = [(j, _shared(model, e.task)) for j, (e, _) in enumerate(jobs)]
    for j, how in shared:
        if how is None:
            out[j] = scores(model, jobs[j][0], jobs[j][1], rows)
    items = [(j, how, i) for j, how in shared if how for i in range(len(jobs[j][1]))]
    encoded = {j: _rows(jobs[j][0], jobs[j][1]) for j, how in shared if how}
    parts: dict[int, list[torch.Tensor]] = {j: [] for j in encoded}
    for at in range(0, len(items), rows):
        chunk = items[at : at + rows]
        for j, part in _forward(model, jobs, encoded, chunk).items():
            parts[j].append(part)
    for j, p in parts.items():
        out[j] = torch.cat(p)
    assert all(o is not None for o in out)  # every job is either shared or scored on its own
    return [o for o in out if o is not None]


def _forward(model, jobs, encoded, chunk) -> dict[int, torch.Tensor]:
    """One forward over ``chunk`` = [(job, how, text index)]; each job's (rows, C) scores in the chunk."""
    from softprompt.tasks.base import check_prompts

    dev = model.backbone.get_input_embeddings().weight.device
    ids = [encoded[j][0][i] for j, _, i in chunk]
    soft = [encoded[j][1][i] for j, _, i in chunk]
    keys = [jobs[j][0].key for j, _, _ in chunk]
    for j in {j for j, how, _ in chunk if how == "words"}:
        check_prompts(model, [jobs[j][0].key], jobs[j][0].task.template.num_soft)
    x, mask = pad_rows(ids, pad_id(model.tokenizer))
    width = max([len(s) for s in soft] + [jobs[j][0].virtual_tokens for j, _, _ in chunk])
    insert_at = None
    if any(soft):  # rows without template slots prepend theirs (index 0)
        insert_at = torch.tensor([s + [0] * (width - len(s)) for s in soft], dtype=torch.long)
    causal = model.info.kind == "causal"
    res = model(
        x.to(dev),
        mask.to(dev),
        keys,
        insert_at=insert_at,
        hidden=any(how == "head" for _, how, _ in chunk),
        last_only=causal,
    )
    found: dict[int, list[int]] = {}
    for r, (j, _, _) in enumerate(chunk):
        found.setdefault(j, []).append(r)
    got = {}
    for j, idx in found.items():
        task, sel = jobs[j][0].task, torch.tensor(idx, device=dev)
        if _shared(model, task) == "head":
            got[j] = task.head(res.hidden[sel], mask.to(dev)[sel]).float().cpu()
            continue
        if causal:
            logits = res.next_logits[sel]  # (n, V)
        else:
            at = torch.tensor([encoded[j][2][i] for jj, _, i in chunk if jj == j], device=dev)
            logits = res.logits[sel, at]  # (n, V) at each row's mask token
        words = logits.float().log_softmax(-1)[:, task.table.token_ids[:, 0].to(dev)]  # (n, W)
        got[j] = task.table.label_scores(words[..., None]).float().cpu()
    return got
