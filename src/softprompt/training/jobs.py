"""What ``train`` is given (``TrainJob``) and what it returns (``TrainResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from softprompt.errors import ConfigError, DataError
from softprompt.tasks.base import Task

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel


@dataclass
class TrainJob:
    """One prompt to train: its task, training examples and validation examples."""

    prompt: str
    task: Task
    train: list[dict]
    validation: list[dict]
    info: dict = field(default_factory=dict)
    """Saved in the prompt files (template, verbalizer, dataset, model, ...) so the task can be rebuilt."""


@dataclass
class TrainResult:
    """What a run did; also written to run.json under "result"."""

    out_dir: Path
    steps: int
    """Optimizer steps done (fewer than configured after early stopping)."""
    trainable_params: int
    train_time_s: float
    final_loss: float | None
    metrics: dict[str, dict[str, float]]
    """Per prompt: validation metrics of its best evaluation (the one saved in best/)."""
    best_step: dict[str, int]
    stopped_early: bool
    mode: str
    """How several jobs were batched: "mixed" or "separate" (see training.batches)."""


def check_jobs(model: PromptedModel, jobs: list[TrainJob]) -> list[TrainJob]:
    if not jobs:
        raise ConfigError("train() needs at least one TrainJob")
    names = [j.prompt for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError(f"each job needs its own prompt; got {names}")
    for j in jobs:
        model.bank.get(j.prompt)  # names the loaded prompts when missing
        if not j.train:
            raise DataError(f"job {j.prompt!r} has no training examples")
        _check_classes(j)
    return jobs


def _check_classes(job: TrainJob) -> None:
    """A classifier trained on one class learns nothing (loss 0, accuracy 1.0): refuse it, naming the label."""
    field_name = getattr(job.task, "label_field", None)
    if job.task.main_metric != "accuracy" or field_name is None:
        return
    found = sorted({str(ex.get(field_name)) for ex in job.train})
    if len(found) == 1:
        raise DataError(
            f"job {job.prompt!r}: every training example has {field_name} {found[0]!r}; a classifier needs at "
            "least two labels in its training examples"
        )


def describe_task(task: Task) -> dict:
    """What identifies a task object: its template, verbalizer and labels where it has them."""
    out = {"task_class": type(task).__name__, "main_metric": task.main_metric}
    template, verbalizer, choice = (getattr(task, a, None) for a in ("template", "verbalizer", "choice"))
    if template is not None:
        out["template"] = template.source
    if verbalizer is not None:
        out["verbalizer"] = verbalizer.label_words
    if choice is not None:  # the template chosen zero-shot (tasks.choose)
        out["template_choice"] = choice.to_json()
    pool = getattr(getattr(task, "head", None), "pool", None)
    if pool is not None:  # a pooled classification head: its pooling (chosen by make_task's head="auto")
        out["pool"] = pool
    for attr in ("labels", "tags"):
        if isinstance(getattr(task, attr, None), list):
            out[attr] = getattr(task, attr)
    return out
