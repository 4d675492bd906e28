"""What a dataset is for (TaskSpec) and its three splits (TaskData)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Task = Literal["classification", "generation", "labeling", "probing"]
TASKS: tuple[str, ...] = get_args(Task)


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """Describes a dataset: its task, the fields examples carry, labels, and hand-written hard prompts.

    Templates use softprompt's template syntax: ``{field}`` is replaced by an example field, ``{mask}`` is the
    answer slot.
    """

    name: str
    """Dataset name (``load_dataset`` accepts it)."""
    task: Task
    """``classification``, ``generation``, ``labeling`` (one tag per token) or ``probing`` (fill in a fact)."""
    text_fields: tuple[str, ...]
    """Example fields a template may reference."""
    label_field: str
    """The field holding the answer: a label name, a target text, a tag list, or a fact's object."""
    labels: tuple[str, ...] | None = None
    """Label names (classification), tag set (labeling), all candidate objects (probing); None for generation."""
    default_templates: tuple[str, ...] = ()
    """Hand-written hard-prompt templates; the first is the default."""
    default_verbalizer: dict[str, list[str]] | None = None
    """Label -> label words, for templates without an entry in ``template_verbalizers``."""
    template_verbalizers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Template -> verbalizer, for templates whose natural answer words differ (``great``/``terrible``)."""
    relation_templates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Probing only: relation -> templates worded for that relation."""
    relation_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Probing only: relation -> candidate objects (P@1 is scored over these)."""
    description: str = ""
    """One line on where the data comes from."""

    def to_json(self) -> dict:
        """What a prompt file records of its task, enough to rebuild it without the dataset."""
        return {
            "name": self.name,
            "task": self.task,
            "text_fields": list(self.text_fields),
            "label_field": self.label_field,
            "labels": None if self.labels is None else list(self.labels),
        }

    @staticmethod
    def from_json(d: dict, template: str | None = None, where: str = "prompt.json") -> TaskSpec:
        """The spec :meth:`to_json` recorded (``template`` becomes its default); ``PromptFileError`` naming
        ``where`` and the missing keys when ``d`` is not such a record."""
        from softprompt.errors import PromptFileError

        missing = [k for k in ("name", "task", "text_fields", "label_field", "labels") if k not in d]
        if missing or not isinstance(d.get("text_fields"), list):
            raise PromptFileError(
                f"{where}: 'spec' lacks {', '.join(map(repr, missing or ['text_fields']))} (as written by "
                "`softprompt train`: name, task, text_fields (a list), label_field, labels)"
            )
        return TaskSpec(
            name=d["name"],
            task=d["task"],
            text_fields=tuple(d["text_fields"]),
            label_field=d["label_field"],
            labels=None if d["labels"] is None else tuple(d["labels"]),
            default_templates=(template,) if template else (),
        )

    def verbalizer_for(self, template: str) -> dict[str, list[str]] | None:
        """The verbalizer that goes with ``template`` (its own, else the default)."""
        return self.template_verbalizers.get(template, self.default_verbalizer)


@dataclass
class TaskData:
    """A dataset's spec and its train / validation / test examples (plain dicts)."""

    spec: TaskSpec
    train: list[dict]
    validation: list[dict]
    test: list[dict]

    def splits(self) -> dict[str, list[dict]]:
        """The three splits by name."""
        return {"train": self.train, "validation": self.validation, "test": self.test}
