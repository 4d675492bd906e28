"""Pieces of a ``softprompt train`` run shared by one-dataset runs (``commands/train.py``) and multitask runs over
several datasets (``commands/multitask.py``): the data checked before the model loads, and what the run records."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softprompt.commands.runconfig import RunSettings
    from softprompt.data.spec import TaskData
    from softprompt.tasks.base import Task
    from softprompt.tasks.choose import TemplateChoice


def local_ref(value: str) -> str:
    """A local path as an absolute path (so eval works from any folder); names and ids unchanged."""
    p = Path(value).expanduser()
    return str(p.resolve()) if p.exists() else value


def run_records(
    s: RunSettings,
    data: TaskData,
    task: Task,
    dtype: str,
    choice: TemplateChoice | None,
    quantize: str | None = None,
) -> tuple[dict, dict, dict]:
    """(prompt.json's info, run.json's run_info, split sizes) of a run."""
    info = {
        "model": local_ref(s.model),
        "dataset": local_ref(s.dataset),
        "task": data.spec.name,
        "spec": data.spec.to_json(),
        "task_head": getattr(getattr(task, "head", None), "pool", None) or s.task.head,
        "fields": s.task.fields,
        "data_seed": s.train.seed,
        "limit": s.task.limit,
        "max_length": s.task.max_length,
    }
    splits = {k: len(v) for k, v in data.splits().items()}
    run_info = {"model": info["model"], "dataset": info["dataset"], "task_options": asdict(s.task)}
    if dtype != "float32":  # recorded (and compared on resume) only when not the default, so old runs resume
        run_info["dtype"] = dtype
    if quantize is not None:  # likewise: a run resumes on the backbone it trained on
        run_info["quantize"] = quantize
    run_info |= {"splits": splits} | ({"template_choice": choice.to_json()} if choice else {})
    return info, run_info, splits


def checked_data(s: RunSettings) -> TaskData:
    """The dataset, with the template checked before it loads (syntax) and after (its fields, a masked LM's
    {mask}), and the verbalizer against its labels; no model is loaded."""
    from softprompt.commands.common import check_template, model_kind
    from softprompt.data import check_classes, load_dataset
    from softprompt.tasks import check_verbalizer

    check_template(s.task.template)
    data = load_dataset(s.dataset, fields=s.task.fields, seed=s.train.seed, limit=s.task.limit)
    check_classes(data, s.dataset, (s.task.fields or {}).get("label", "label"))
    check_template(s.task.template, data.spec, kind=model_kind(s.model), head=s.task.head)
    check_verbalizer(s.task.verbalizer, data.spec)
    return data
