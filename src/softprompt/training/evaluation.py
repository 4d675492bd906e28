"""Scoring a prompt on labelled examples with its task's metrics (one process, or sharded over several)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def eval_mode(model, task):
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


def predict(model, task, examples: list[dict], prompt: str | None, batch_size: int = 16) -> list:
    """The task's prediction for every example, in order (``prompt=None``: the bare model / template)."""
    out = []
    with eval_mode(model, task):
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            out += task.predict(model, task.collate(chunk), [prompt] * len(chunk))
    return out


def evaluate(model, task, examples: list[dict], prompt: str | None, batch_size: int = 16) -> dict[str, float]:
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
    model, task, examples: list[dict], prompt: str | None, batch_size: int, accelerator
) -> dict[str, float]:
    """Like ``evaluate``, each of N processes scoring a contiguous 1/N of the examples; all get the metrics."""
    world = accelerator.num_processes
    if world == 1:
        return evaluate(model, task, examples, prompt, batch_size)
    from accelerate.utils import gather_object

    per = -(-len(examples) // world)
    mine = examples[accelerator.process_index * per : (accelerator.process_index + 1) * per]
    preds = gather_object([predict(model, task, mine, prompt, max(1, batch_size // world))])
    return task.metrics([p for part in preds for p in part], task.gold(examples))
