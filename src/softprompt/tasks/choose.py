"""The default hard prompt for a classification dataset: candidate templates scored zero-shot, best one kept.

A template nobody chose for the data (``{text}\\nAnswer: {mask}``) can sit at chance where a hand-written one
scores 25 points higher, and a soft prompt started there stays near chance for a short budget. So without a
given template, :func:`choose_template` scores a small set of candidates on held-out examples and keeps the
best; soft prompts then start *from its lead-in text* (what ``experiments/demo.py`` does by hand)::

    choice = choose_template(model, data.spec, data.validation)
    template, fields, lr = choice.start("prompt-tuning", model.tokenizer)
    task = make_task(model, data.spec, template=template, verbalizer=choice.verbalizer)
    model.add_prompt("mine", make_config("prompt-tuning", **fields))   # then TrainConfig(lr=lr or ...)

Candidates: the dataset's own templates, then the built-in datasets' classification templates (those whose
fields the data has), each bare; the two best bodies are then scored again after each *lead-in*, an
instruction sentence built from the label names ("Classify the text as negative or positive.").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from softprompt.errors import SoftPromptError
from softprompt.methods import METHODS
from softprompt.prompting.templates import parse_template
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks.classify import VerbalizerTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.core.model import PromptedModel
    from softprompt.data.spec import TaskSpec

GENERIC = ("{text}\nAnswer: {mask}", "Text: {text}\nLabel: {mask}")
"""Templates for any classification data (besides the data's own and the built-ins')."""
LEADS = (
    "Classify the text as {labels}.\n",
    "Is the following text {labels}?\n",
    "The following is a text and its label ({labels}).\n",
)
"""Lead-in instructions; ``{labels}`` becomes the label names ("negative or positive")."""


@dataclass(frozen=True, kw_only=True)
class TemplateChoice:
    """The chosen hard prompt ``lead + template`` with ``verbalizer``, what it scored zero-shot, and the
    lead-in soft prompts start from."""

    template: str
    """The template body (a soft prompt's task uses it; its virtual tokens stand for the lead-in)."""
    lead: str
    """Lead-in text of the best hard prompt ("" = the bare template scored best)."""
    soft_lead: str
    """Text soft prompts are initialized from: ``lead``, or the best lead-in for a bare winner."""
    verbalizer: dict[str, list[str]]
    score: float
    """Zero-shot main metric of ``lead + template`` on the scored examples."""
    metric: str
    examples: int
    """How many examples each candidate was scored on."""
    split: str
    """Which split they came from."""
    candidates: list[dict] = field(default_factory=list)
    """Every candidate scored: {"template", "lead", metric}, in the order scored."""

    @property
    def full_template(self) -> str:
        """The hard prompt that scored ``score``."""
        return self.lead + self.template

    def start(
        self, method: str, tokenizer: PreTrainedTokenizerBase, given: dict | None = None
    ) -> tuple[str, dict, float | None]:
        """(task template, method options, peak learning rate or None) that start ``method`` here.

        Methods that can start from words (their registered ``Method.text_start_lr`` gives a rate for these
        options: prompt tuning, P-tuning, P-tuning v2 without reparameterization) get ``soft_lead``'s tokens as
        their virtual tokens and the body as template, with that small learning rate so training does not wash
        the words out. The others (hard, prefix tuning) get the full hard prompt. Options in ``given`` (the
        user's) always win; giving ``init`` keeps the full prompt.
        """
        given = dict(given or {})
        rule = METHODS[method].text_start_lr if method in METHODS else None
        lr = None if rule is None else rule(given)
        if lr is None or not self.soft_lead or "init" in given or "init_text" in given:
            return self.full_template, given, None
        n = len(tokenizer(self.soft_lead, add_special_tokens=False)["input_ids"])
        fields = {"num_virtual_tokens": n, "init": "text", "init_text": self.soft_lead, **given}
        return self.template, fields, lr

    def to_json(self) -> dict:
        return asdict(self) | {"full_template": self.full_template}


def label_phrase(labels: Sequence[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    labels = [str(x) for x in labels]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


def candidate_bodies(spec: TaskSpec, verbalizer: dict | None = None) -> list[tuple[str, dict]]:
    """(template, verbalizer) pairs: the spec's templates, the generic ones, the built-ins' that fit."""
    from softprompt.data import list_datasets

    names = {str(x): [str(x)] for x in spec.labels or ()}
    out: dict[str, dict] = {}

    def add(template: str, source) -> None:
        if template in out or not set(parse_template(template).fields) <= set(spec.text_fields):
            return
        words = verbalizer or source.verbalizer_for(template)
        out[template] = words if words and set(words) == set(names) else names

    for t in spec.default_templates:
        add(t, spec)
    for t in GENERIC:
        add(t, spec)
    for other in list_datasets():
        if other.task == "classification" and other.name != spec.name:
            for t in other.default_templates:
                add(t, other)
    return list(out.items())


@torch.no_grad()
def _score(model, spec, template: str, words: dict, examples: list[dict], batch_size: int) -> dict:
    task = VerbalizerTask(model, template, Verbalizer.from_spec(words), label_field=spec.label_field)
    was, preds = model.training, []
    model.eval()
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        preds += task.predict(model, task.collate(chunk), [None] * len(chunk))
    model.train(was)
    return task.metrics(preds, task.gold(examples))


def choose_template(
    model: PromptedModel,
    spec: TaskSpec,
    examples: list[dict],
    *,
    verbalizer: dict | None = None,
    split: str = "validation",
    max_examples: int = 64,
    max_bodies: int = 12,
    batch_size: int = 16,
    progress: bool = False,
) -> TemplateChoice | None:
    """Score candidate templates zero-shot on ``examples[:max_examples]``; the best, or None when the task
    is not label-word classification (generation, labeling, probing, a bare encoder) or has no examples.

    Args:
        verbalizer: label words every candidate uses (default: each template's own, else the label names).
        split: the split ``examples`` come from (recorded).
        max_bodies: at most this many template bodies are scored (the spec's own first).
    """
    if spec.task != "classification" or not spec.labels or model.info.kind == "encoder" or not examples:
        return None
    from tqdm.auto import tqdm

    examples = examples[:max_examples]
    bodies = candidate_bodies(spec, verbalizer)[:max_bodies]
    leads = [lead.format(labels=label_phrase(spec.labels)) for lead in LEADS]
    bar = tqdm(total=len(bodies) + 2 * len(leads), desc="templates", disable=not progress)
    metric = "accuracy"

    def score(template: str, lead: str, words: dict) -> None:
        try:
            m = _score(model, spec, lead + template, words, examples, batch_size)
        except SoftPromptError:  # e.g. a label word the tokenizer cannot spell: not a candidate here
            m = None
        if m is not None:
            rows.append({"template": template, "lead": lead, "verbalizer": words, **m})
        bar.update(1)

    rows: list[dict] = []
    for template, words in bodies:
        score(template, "", words)
    for body in sorted(rows, key=lambda r: -r[metric])[:2]:
        for lead in leads:
            score(body["template"], lead, body["verbalizer"])
    bar.close()
    return _best(rows, metric, len(examples), split) if rows else None


def _best(rows: list[dict], metric: str, examples: int, split: str) -> TemplateChoice:
    """The best scored row (the first of equal scores: the data's own template wins ties) and, for soft
    prompts, the best lead-in that template got (its own when it won with one)."""
    best = max(rows, key=lambda r: r[metric])
    led = [r for r in rows if r["template"] == best["template"] and r["lead"]]
    soft_lead = best["lead"] or (max(led, key=lambda r: r[metric])["lead"] if led else "")
    return TemplateChoice(
        template=best["template"],
        lead=best["lead"],
        soft_lead=soft_lead,
        verbalizer=best["verbalizer"],
        score=best[metric],
        metric=metric,
        examples=examples,
        split=split,
        candidates=[{k: r[k] for k in ("template", "lead", metric)} for r in rows],
    )
