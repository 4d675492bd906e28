"""Tasks: how examples become batches, and outputs become a loss, predictions and metrics.

``make_task`` picks the task for a dataset spec and a backbone: label-word scoring through a template
(classification, probing), a pooled head (classification on bare encoders, or when asked), a token head
(labeling), or teacher-forced generation.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Literal, cast

from softprompt.core.pooling import checkpoint_folder, trained_pooling
from softprompt.errors import VerbalizerError, check_value
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks.base import MAX_LENGTH, Task, context_limit
from softprompt.tasks.classify import VerbalizerTask
from softprompt.tasks.generative import GenerationTask
from softprompt.tasks.heads import HeadClassificationTask, LabelingTask

Head = Literal["auto", "lm", "first", "last", "mean", "max"]

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.data.spec import TaskSpec
    from softprompt.tasks.layers import Pool
"""Accepted ``head`` values ("auto" = None: see :func:`default_head`)."""
HEADS = typing.get_args(Head)


def make_task(
    model: PromptedModel,
    spec: TaskSpec,
    *,
    template: str | None = None,
    verbalizer: dict | Verbalizer | None = None,
    head: Head | None = "auto",
    virtual_tokens: int = 0,
    max_length: int = MAX_LENGTH,
    choose_from: list[dict] | None = None,
) -> Task:
    """The task for ``spec`` (a ``data.TaskSpec``) on ``model``.

    Args:
        template: hard-prompt template (default: the spec's first).
        verbalizer: label -> words mapping (default: the spec's for that template).
        head: "lm" scores label words; "first"/"last"/"mean"/"max" trains a pooled classification head;
            "auto" (or None): :func:`default_head` (the checkpoint's own pooling for a sentence-transformers
            encoder). A pooled head records its pooling and why as ``task.head.pool`` / ``task.pool_source``.
        virtual_tokens: how many positions the prompt takes (to leave room for them when truncating).
        max_length: tokens an input may take, cut to the backbone's context (:func:`tasks.base.context_limit`).
        choose_from: held-out examples (e.g. the validation split): without ``template``, a label-word
            classification task takes the best of several candidate templates scored zero-shot on them
            (``tasks.choose.choose_template``; the choice is kept as ``task.choice`` and recorded in run.json).
    """
    check_value("head", head, Head | None)
    if isinstance(verbalizer, dict):  # given as label -> words (a Verbalizer object is checked already)
        check_verbalizer(verbalizer, spec)
    limit = context_limit(model)
    max_length = min(max_length, limit) if limit else max_length
    choice = None
    pooled = spec.task not in ("labeling", "generation")  # only these tasks take a head choice
    head, why = default_head(model) if pooled and head in (None, "auto") else (head, "asked for")
    if template is None and choose_from and head == "lm":
        from softprompt.tasks.choose import choose_template

        words = verbalizer.label_words if isinstance(verbalizer, Verbalizer) else verbalizer
        choice = choose_template(model, spec, choose_from, verbalizer=words)
        if choice is not None:
            template, verbalizer = choice.full_template, verbalizer or choice.verbalizer
    template = template or (spec.default_templates[0] if spec.default_templates else "{text}")
    if spec.task == "labeling":
        return LabelingTask(
            model,
            spec.labels or (),
            tokens_field="tokens",
            tags_field=spec.label_field,
            max_length=max_length,
        )
    if spec.task == "generation":
        return GenerationTask(
            model,
            template,
            target_field=spec.label_field,
            max_length=max_length,
            virtual_tokens=virtual_tokens,
        )
    if head != "lm":
        return _head_task(model, spec, template, cast("Pool", head), why, max_length)  # checked: HEADS
    return _label_word_task(model, spec, template, verbalizer, max_length, virtual_tokens, choice)


def check_verbalizer(verbalizer: dict | None, spec: TaskSpec) -> None:
    """Every label of a classification dataset needs words (a string or a list of strings), and no others.

    Raises:
        VerbalizerError: naming the label and what is accepted.
    """
    if verbalizer is None:
        return
    for label, words in verbalizer.items():
        listed = [words] if isinstance(words, str) else words
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(w, str) and w.strip() for w in listed)
        ):
            raise VerbalizerError(
                f"verbalizer label {label!r}: {words!r} is not accepted; give a word or a list of words, "
                'e.g. {"positive": ["good", "great"]} or "positive=good,great;negative=bad"'
            )
    if spec.task != "classification" or not spec.labels:
        return
    missing = [label for label in spec.labels if label not in verbalizer]
    if missing:
        raise VerbalizerError(
            f"the verbalizer has no words for label(s) {', '.join(map(repr, missing))} "
            f"(dataset labels: {', '.join(spec.labels)}; verbalizer: {sorted(verbalizer)})"
        )
    extra = [label for label in verbalizer if label not in spec.labels]
    if extra:
        raise VerbalizerError(
            f"the verbalizer has label(s) {', '.join(map(repr, extra))}, which dataset {spec.name!r} does "
            f"not have (its labels: {', '.join(spec.labels)})"
        )


def _head_task(model, spec, template: str, pool: Pool, why: str, max_length: int) -> Task:
    """Classification by a new pooled head over the encoded template (its ``{mask}`` dropped)."""
    task = HeadClassificationTask(
        model,
        spec.labels,
        template=_no_mask(template),
        label_field=spec.label_field,
        pool=pool,
        max_length=max_length,
    )
    task.pool_source = why
    return task


def _label_word_task(model, spec, template, verbalizer, max_length, virtual_tokens, choice) -> Task:
    """Classification (or probing) by the LM's scores of each label's words at the template's ``{mask}``."""
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


def default_head(model: PromptedModel) -> tuple[Head, str]:
    """(head, why) for ``head="auto"``: "lm" where the backbone has a language-model head; for a bare
    encoder, the pooling its sentence-transformers checkpoint was trained with (``core.pooling``: mean for
    all-MiniLM-L6-v2, where a first-token head learned nothing, bench/results/lr_sweep-minilm.md), else the
    first token ([CLS]).

    Raises:
        PromptFileError: the checkpoint's pooling config is unreadable or names a pooling no head reproduces.
    """
    if model.info.kind != "encoder":
        return "lm", "the backbone has a language-model head"
    found = trained_pooling(checkpoint_folder(model.backbone))
    if found is not None:
        # trained_pooling returns only poolings a head reproduces (first, last, mean, max), else raises
        return cast(Head, found[0]), f"the checkpoint's pooling, {found[1]}"
    return "first", "no sentence-transformers pooling config in the checkpoint"


def saved_head(model: PromptedModel, recorded: str | None) -> Head:
    """The head of a prompt saved with ``task_head=recorded``: files written before ``head="auto"`` record
    None for the default, which was "lm" on language models and "first" on bare encoders."""
    if recorded:
        return cast(Head, recorded)  # as the file says; make_task checks it against Head
    return "lm" if model.info.kind != "encoder" else "first"


def _no_mask(template: str) -> str:
    return template.replace("{mask}", "").strip() or "{text}"


__all__ = [
    "HEADS",
    "MAX_LENGTH",
    "GenerationTask",
    "HeadClassificationTask",
    "LabelingTask",
    "Task",
    "VerbalizerTask",
    "check_verbalizer",
    "context_limit",
    "default_head",
    "make_task",
    "saved_head",
]
