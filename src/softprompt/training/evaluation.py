"""Scoring a prompt on labelled examples with its task's metrics (one process, or sharded over several)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelerate import Accelerator

    from softprompt.core.model import PromptedModel
    from softprompt.tasks.base import Task


@contextlib.contextmanager
def eval_mode(model: PromptedModel, task: Task) -> Iterator[None]:
    """Dropout off for the model's prompts and the task's heads, ``no_grad``; previous modes restored after."""
    heads = list(task.modules().values())
    was = [m.training for m in heads]
    for m in heads:
        m.eval()
    try:
        with model.inference():
            yield
    finally:
        for m, w in zip(heads, was):
            m.train(w)


def predict(
    model: PromptedModel, task: Task, examples: list[dict], prompt: str | None, batch_size: int = 16
) -> list:
    """The task's prediction for every example, in order (``prompt=None``: the bare model / template)."""
    out = []
    with eval_mode(model, task):
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            out += task.predict(model, task.collate(chunk), [prompt] * len(chunk))
    return out


def evaluate(
    model: PromptedModel, task: Task, examples: list[dict], prompt: str | None, batch_size: int = 16
) -> dict[str, float]:
    """Metrics of ``prompt`` on labelled ``examples`` (``task.main_metric`` among them).

    Args:
        model: a ``PromptedModel`` holding ``prompt`` in its bank.
        task: the ``Task`` the prompt was trained for.
        examples: labelled examples (dicts with the task's fields).
        prompt: prompt name, or None for the model without a prompt.
        batch_size: examples per forward.
    """
    return task.metrics(predict(model, task, examples, prompt, batch_size), task.gold(examples))


def evaluate_sharded(
    model: PromptedModel,
    task: Task,
    examples: list[dict],
    prompt: str | None,
    batch_size: int,
    accelerator: Accelerator,
    *,
    lockstep: bool = False,
) -> dict[str, float]:
    """Like ``evaluate``, each of N processes scoring a contiguous 1/N of the examples; all get the metrics.

    ``lockstep`` (a sharded backbone, whose every forward is a collective): every process runs the same
    batches over all the examples, so they call the backbone the same number of times even where decoding
    stops early; all take the main process's predictions."""
    world = accelerator.num_processes
    if world == 1:
        preds = predict(model, task, examples, prompt, batch_size)
    elif lockstep:
        from accelerate.utils import broadcast_object_list

        preds = broadcast_object_list([predict(model, task, examples, prompt, batch_size)], from_process=0)[0]
    else:
        from accelerate.utils import gather_object

        per = -(-len(examples) // world)
        mine = examples[accelerator.process_index * per : (accelerator.process_index + 1) * per]
        parts = gather_object([predict(model, task, mine, prompt, max(1, batch_size // world))])
        preds = [p for part in parts for p in part]
    gold = task.gold(examples)
    if getattr(accelerator, "is_main_process", True):
        warn_if_collapsed(task, preds, gold, prompt)
    return task.metrics(preds, gold)


def collapsed_to(task: Task, predictions: list, gold: list) -> object:
    """The one class a classification prompt predicts for every example while the gold has several, or None."""
    if getattr(task, "main_metric", None) != "accuracy" or len(set(gold)) < 2 or len(set(predictions)) != 1:
        return None
    return predictions[0]


def warn_if_collapsed(task: Task, predictions: list, gold: list, prompt: str | None) -> None:
    """Warn, naming the fix, when the validation predictions collapsed to one class."""
    cls = collapsed_to(task, predictions, gold)
    if cls is None:
        return
    labels = getattr(task, "labels", None) or getattr(getattr(task, "verbalizer", None), "labels", None)
    name = labels[cls] if labels and isinstance(cls, int) and 0 <= cls < len(labels) else cls
    share = sum(g == cls for g in gold) / len(gold)
    head_hint = (
        "give a new head its own rate (--head-lr, e.g. 3e-2), " if getattr(task, "modules", dict)() else ""
    )
    warnings.warn(
        f"prompt {prompt!r} predicts {name!r} for all {len(gold)} validation examples (that class is "
        f"{share:.1%} of them; the gold has {len(set(gold))} classes): it has collapsed to one class. "
        "Fix: lower the learning rate (--lr; `softprompt methods` lists each method's measured default), "
        f"{head_hint}start from real words (--init words / labels / text) rather than random, or train longer",
        UserWarning,
        stacklevel=2,
    )
