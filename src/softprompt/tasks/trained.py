"""A prompt folder loaded with the task it was trained for: ``load_trained(path)`` is the one call.

A prompt saved by ``softprompt train`` records its task in ``prompt.json`` (``spec``, ``template``,
``verbalizer``, ``task_head``, ``max_length``) and its head tensors in ``prompt.safetensors``; it rebuilds that
task. A prompt that records none (imported from PEFT, saved by ``save_prompt``) gets one from ``labels`` /
``verbalizer`` / a dataset ``spec``, or loads without a task. ``predict``, ``eval``, ``generate``, ``peft
export``, the server and the benchmarks all load trained prompts through here.

    trained = load_trained("runs/rt-pt")            # the model recorded with the prompt, on "auto"
    predictions = softprompt.predict(trained.model, trained.task, [{"text": "a gorgeous film"}], trained.name)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from softprompt.errors import ConfigError, PromptFileError
from softprompt.tasks.base import MAX_LENGTH, Task

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.data.spec import TaskSpec

DEFAULT_TEMPLATE = "{text}\nAnswer: {mask}"
"""The template of a prompt that records no task, when neither ``template`` nor the dataset gives one."""


@dataclass(frozen=True)
class TrainedFolder:
    """A prompt folder read and checked, before any model loads (a broken file fails fast)."""

    folder: Path
    """The prompt folder (a run folder resolves to its best, else final, prompt)."""
    meta: dict
    """``prompt.json`` as read."""
    spec: dict | None
    """The task description: recorded, or built from ``labels`` / ``verbalizer`` / ``spec``; None: no task."""
    recorded: bool
    """Whether ``spec`` is the one the prompt was trained with."""
    template: str | None
    """The template the task uses (the given one, else the recorded one, else a default)."""
    verbalizer: dict | None
    """Label -> words (the given one, else the recorded one, unless ``labels`` replaced the labels)."""

    @property
    def model_name(self) -> str | None:
        """The backbone recorded with the prompt."""
        return self.meta.get("model")


class Trained(NamedTuple):
    """A loaded prompt: the model holding it, its name in ``model.bank``, its metadata and its task."""

    model: PromptedModel
    name: str
    meta: dict
    task: Task | None


def read_trained(
    path: str | os.PathLike,
    *,
    template: str | None = None,
    verbalizer: dict | None = None,
    labels: list[str] | None = None,
    spec: TaskSpec | None = None,
    need_task: bool = True,
) -> TrainedFolder:
    """Read and check a prompt (or run) folder and decide its task, without loading a model.

    Args:
        template, verbalizer, labels: replace the recorded ones (the ``--template`` / ``--verbalizer`` /
            ``--labels`` flags); ``template`` also stands in for a prompt.json that lost its template.
        spec: a dataset's task description, for a prompt that records none.
        need_task: False: a prompt without a recorded task (and without ``labels`` / ``verbalizer`` /
            ``spec``) loads without one instead of being refused.

    Raises:
        PromptFileError: a broken prompt.json (naming the file and key), or no task where one is needed.
    """
    from softprompt.data.spec import TaskSpec
    from softprompt.files.prompts import check_meta, read_meta, recorded_template, resolve_prompt_dir

    folder = resolve_prompt_dir(path)
    meta = read_meta(folder)
    check_meta(meta, folder)
    where = str(folder / "prompt.json")
    if "spec" in meta and not isinstance(meta["spec"], dict):
        raise PromptFileError(f"{where}: 'spec' must be a JSON object")
    recorded = meta.get("spec") or None
    if recorded:
        template = template or recorded_template(meta, folder)
        TaskSpec.from_json(recorded, template, where)  # a broken recorded task fails here
        spec_d = recorded | ({"labels": list(labels or verbalizer or ())} if labels or verbalizer else {})
    else:
        spec_d = _spec_from_flags(folder, template, verbalizer, labels, spec, need_task)
        default = spec.default_templates[0] if spec is not None and spec.default_templates else None
        template = template or default or meta.get("template") or DEFAULT_TEMPLATE
    words = verbalizer or (None if labels else meta.get("verbalizer"))
    return TrainedFolder(folder, meta, spec_d, bool(recorded), template, words)


def load_trained(
    path: str | os.PathLike | TrainedFolder,
    model: str | PromptedModel | None = None,
    *,
    name: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str | None = None,
    **task: Any,
) -> Trained:
    """Load a trained prompt with its task (template, verbalizer, head, lengths) in one call.

    Args:
        path: a prompt folder, a run folder, or what :func:`read_trained` returned.
        model: a loaded ``PromptedModel`` to add the prompt to, or the backbone to load (a built-in name, HF id
            or folder; default: the one recorded with the prompt) on ``device`` in ``dtype``, its linear layers
            ``quantize``d ("int8", "nf4", "fp4"; default: not).
        name: the prompt's name in ``model.bank`` (default: the recorded one).
        **task: ``template``, ``verbalizer``, ``labels``, ``spec``, ``need_task`` of :func:`read_trained`.

    Returns:
        ``Trained(model, name, meta, task)``; ``task`` is None for a prompt loaded without one.
    """
    from softprompt.core.loading import load_model
    from softprompt.files.prompts import load_prompt

    plan = path if isinstance(path, TrainedFolder) else read_trained(path, **task)
    if model is None or isinstance(model, (str, os.PathLike)):
        backbone = model or plan.model_name
        if not backbone:
            raise ConfigError(f"{plan.folder} does not record its model; pass model= (--model)")
        model = load_model(str(backbone), device=device, dtype=dtype, quantize=quantize)
    name, meta = load_prompt(model, plan.folder, name)
    if plan.spec is None:
        return Trained(model, name, meta, None)
    meta["spec"] = (
        plan.spec
    )  # what predict / generate read (built from the flags for a prompt without a task)
    return Trained(model, name, meta, trained_task(model, plan, name, meta["head"]))


def trained_task(model: PromptedModel, plan: TrainedFolder, name: str, heads: dict) -> Task:
    """The task of ``plan`` on ``model`` for the loaded prompt ``name``, with its saved ``heads`` tensors."""
    from softprompt.data.spec import TaskSpec
    from softprompt.tasks import make_task, saved_head
    from softprompt.tasks.base import load_heads

    if plan.spec is None:
        raise PromptFileError(f"{plan.folder}: the prompt records no task; read it with need_task=True")
    task = make_task(
        model,
        TaskSpec.from_json(plan.spec, plan.template, str(plan.folder / "prompt.json")),
        template=plan.template,
        verbalizer=plan.verbalizer,
        head=saved_head(model, plan.meta.get("task_head")),
        virtual_tokens=model.bank.get(name).config.num_virtual_tokens,
        max_length=plan.meta.get("max_length", MAX_LENGTH),
    )
    load_heads(task, heads, plan.folder)
    return task


def _spec_from_flags(folder, template, verbalizer, labels, spec, need_task: bool) -> dict | None:
    """The task description of a prompt that records none, from the flags (or the dataset's spec)."""
    from softprompt.data import TaskSpec
    from softprompt.prompting.templates import parse_template

    if labels or verbalizer:
        names = tuple(labels or verbalizer)
        text = [f for f in parse_template(template or DEFAULT_TEMPLATE).fields if f != "label"] or ["text"]
        base = spec or TaskSpec(name=Path(folder).name, task="classification", text_fields=tuple(text),
                                label_field="label")  # fmt: skip
        return base.to_json() | {"labels": list(names)}
    if spec is not None:
        return spec.to_json()
    if not need_task:
        return None
    raise PromptFileError(
        f"{folder}: prompt.json records no task (imported from PEFT, or saved by save_prompt); say how "
        "to classify with --labels NEG,POS (or --verbalizer 'label=word;...') and optionally --template "
        f"(default: {DEFAULT_TEMPLATE!r})"
    )
