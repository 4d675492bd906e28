"""Tasks: how examples become batches, and outputs become a loss, predictions and metrics.

``make_task`` picks the task for a dataset spec and a backbone: label-word scoring through a template
(classification, probing), a pooled head (classification on bare encoders, or when asked), a token head
(labeling), or teacher-forced generation.
"""

from __future__ import annotations

from softprompt.errors import ConfigError
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks.base import Task
from softprompt.tasks.classify import VerbalizerTask
from softprompt.tasks.generation import GenerationTask
from softprompt.tasks.heads import HeadClassificationTask, LabelingTask

HEADS = ("lm", "first", "last", "mean")


def make_task(
    model,
    spec,
    *,
    template: str | None = None,
    verbalizer=None,
    head: str | None = None,
    virtual_tokens: int = 0,
    max_length: int = 256,
    choose_from: list[dict] | None = None,
) -> Task:
    """The task for ``spec`` (a ``data.TaskSpec``) on ``model``.

    Args:
        template: hard-prompt template (default: the spec's first).
        verbalizer: label -> words mapping (default: the spec's for that template).
        head: "lm" scores label words; "first"/"last"/"mean" trains a pooled classification head. Default:
            "lm" where the backbone has a language-model head, else "first".
        virtual_tokens: how many positions the prompt takes (to leave room for them when truncating).
        choose_from: held-out examples (e.g. the validation split): without ``template``, a label-word
            classification task takes the best of several candidate templates scored zero-shot on them
            (``tasks.choose.choose_template``; the choice is kept as ``task.choice`` and recorded in run.json).
    """
    if head is not None and head not in HEADS:
        raise ConfigError(f"head={head!r} is not accepted; choose one of: {', '.join(HEADS)}")
    choice = None
    if template is None and choose_from and head in (None, "lm"):
        from softprompt.tasks.choose import choose_template

        choice = choose_template(model, spec, choose_from, verbalizer=verbalizer)
        if choice is not None:
            template, verbalizer = choice.full_template, verbalizer or choice.verbalizer
    template = template or (spec.default_templates[0] if spec.default_templates else "{text}")
    if spec.task == "labeling":
        return LabelingTask(
            model, spec.labels, tokens_field="tokens", tags_field=spec.label_field, max_length=max_length
        )
    if spec.task == "generation":
        return GenerationTask(
            model,
            template,
            target_field=spec.label_field,
            max_length=max_length,
            virtual_tokens=virtual_tokens,
        )
    head = head or ("lm" if model.info.kind != "encoder" else "first")
    if head != "lm":
        return HeadClassificationTask(
            model,
            spec.labels,
            template=_no_mask(template),
            label_field=spec.label_field,
            pool=head,
            max_length=max_length,
        )
    probing = spec.task == "probing"
    words = verbalizer or (None if probing else spec.verbalizer_for(template))
    verb = Verbalizer.from_spec(words or list(spec.labels))
    task = VerbalizerTask(
        model,
        template,
        verb,
        label_field=spec.label_field,
        max_length=max_length,
        virtual_tokens=virtual_tokens,
        probing=probing,
    )
    task.choice = choice
    return task


def _no_mask(template: str) -> str:
    return template.replace("{mask}", "").strip() or "{text}"


__all__ = [
    "HEADS",
    "GenerationTask",
    "HeadClassificationTask",
    "LabelingTask",
    "Task",
    "VerbalizerTask",
    "make_task",
]
