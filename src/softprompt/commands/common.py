"""What several commands share: output, building a task the way training did, and loading a trained prompt."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from softprompt.errors import ConfigError, PromptFileError, VerbalizerError


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun launch (only rank 0 prints)."""
    return int(os.environ.get("RANK", "0")) == 0


def quiet_loading() -> None:
    """No transformers progress bars ("Loading weights") on stderr."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def table(rows: list[list], headers: list[str], last_width: int = 72) -> str:
    """A plain left-aligned text table; the last column wraps at ``last_width`` characters."""
    import textwrap

    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    lines = []
    for r in cells:
        wrapped = textwrap.wrap(r[-1], last_width) or [""]
        lead = "  ".join(c.ljust(w) for c, w in zip(r, widths))
        lines += [f"{lead}  {wrapped[0]}".rstrip()] + [f"{' ' * len(lead)}  {w}" for w in wrapped[1:]]
    lines.insert(1, "  ".join("-" * w for w in widths + [min(last_width, max(len(r[-1]) for r in cells))]))
    return "\n".join(lines)


def prompt_name(dataset: str) -> str:
    """A bank-safe prompt name from a dataset name (``my data.v2`` -> ``my-data-v2``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", dataset).strip("-")[:128] or "prompt"


# ----- tasks ------------------------------------------------------------------------------------------------
def spec_json(spec) -> dict:
    """What ``predict`` needs to rebuild a task without the dataset."""
    return {
        "name": spec.name,
        "task": spec.task,
        "text_fields": list(spec.text_fields),
        "label_field": spec.label_field,
        "labels": None if spec.labels is None else list(spec.labels),
    }


def spec_from_json(d: dict, template: str | None):
    from softprompt.data import TaskSpec

    return TaskSpec(
        name=d["name"],
        task=d["task"],
        text_fields=tuple(d["text_fields"]),
        label_field=d["label_field"],
        labels=None if d["labels"] is None else tuple(d["labels"]),
        default_templates=(template,) if template else (),
    )


def check_verbalizer(verbalizer: dict | None, spec) -> None:
    """Every label of a classification dataset needs words."""
    if verbalizer is None or spec.task != "classification" or not spec.labels:
        return
    missing = [label for label in spec.labels if label not in verbalizer]
    if missing:
        raise VerbalizerError(
            f"the verbalizer has no words for label(s) {', '.join(map(repr, missing))} "
            f"(dataset labels: {', '.join(spec.labels)}; verbalizer: {sorted(verbalizer)})"
        )


def make_task_for(model, spec, *, template, verbalizer, head, virtual_tokens: int, max_length: int = 256):
    from softprompt.tasks import make_task

    check_verbalizer(verbalizer, spec)
    return make_task(
        model,
        spec,
        template=template,
        verbalizer=verbalizer,
        head=head,
        virtual_tokens=virtual_tokens,
        max_length=max_length,
    )


def init_token_ids(task, tokenizer) -> list[int | None]:
    """Per virtual token of the task's template, the id a ``{soft:"words"}`` slot starts it from (else None)."""
    template = getattr(task, "template", None)
    return (
        []
        if template is None or not hasattr(template, "init_token_ids")
        else template.init_token_ids(tokenizer)
    )


def label_words(task) -> list[str]:
    """Words for init="labels": the verbalizer's words, else the task's class names (head classification)."""
    verbalizer = getattr(task, "verbalizer", None)
    if verbalizer is not None:
        return [w for words in verbalizer.label_words.values() for w in words]
    return [str(label) for label in getattr(task, "labels", None) or []]


# ----- trained prompts --------------------------------------------------------------------------------------
def resolve_prompt_dir(path: str) -> Path:
    """A prompt folder, or a run folder (its best prompt, else its final one, when it trained one prompt)."""
    p = Path(path)
    if (p / "prompt.json").exists():
        return p
    if (p / "run.json").exists():
        for kind in ("best", "final"):
            found = sorted(d for d in (p / kind).glob("[!.]*") if (d / "prompt.json").exists())
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ConfigError(f"run {p} trained several prompts; give one: {', '.join(map(str, found))}")
        raise PromptFileError(f"run {p} has no saved prompt yet (no best/ or final/ folder)")
    raise PromptFileError(f"{p}: neither a prompt folder (prompt.json) nor a run folder (run.json)")


def load_trained(
    path: str,
    model_name: str | None,
    *,
    template: str | None = None,
    verbalizer: dict | None = None,
    labels: list[str] | None = None,
    spec=None,
    need_task: bool = True,
):
    """(model, prompt name, metadata, task) for a saved prompt.

    A prompt saved by ``softprompt train`` rebuilds its own task; ``template`` / ``verbalizer`` / ``labels``
    (the --template / --verbalizer / --labels flags) override it. A prompt without a recorded task (PEFT
    import, ``save_prompt``) needs ``labels`` or ``verbalizer`` (or a dataset ``spec``) to classify; with
    ``need_task=False`` (generate, peft export) it loads as is and the task is None.
    """
    from softprompt.core.loading import load_model
    from softprompt.files.prompts import load_prompt, read_meta

    folder = resolve_prompt_dir(path)
    meta = read_meta(folder)
    model_name = model_name or meta.get("model")
    if not model_name:
        raise ConfigError(f"{folder} does not record its model; pass --model")
    recorded = meta.get("spec")
    spec_d = recorded or task_spec_json(folder, template, verbalizer, labels, spec, need_task)
    if recorded and (labels or verbalizer):
        spec_d = recorded | {"labels": list(labels or verbalizer)}
    quiet_loading()
    model = load_model(model_name)
    name, meta = load_prompt(model, folder)
    if spec_d is None:
        return model, name, meta, None
    meta["spec"] = spec_d  # what predict / generate read (built from the flags for a prompt without a task)
    if not recorded:
        template = template or (spec.default_templates[0] if spec and spec.default_templates else None)
    template = template or meta.get("template") or (None if recorded else DEFAULT_TEMPLATE)
    spec_obj = spec_from_json(spec_d, template)
    virtual = model.bank.get(name).config.num_virtual_tokens
    task = make_task_for(
        model,
        spec_obj,
        template=template,
        verbalizer=verbalizer or (None if labels else meta.get("verbalizer")),
        head=meta.get("task_head"),
        virtual_tokens=virtual,
        max_length=meta.get("max_length", 256),
    )
    _load_heads(task, meta["head"], folder)  # load_prompt puts the head tensors under "head"
    return model, name, meta, task


DEFAULT_TEMPLATE = "{text}\nAnswer: {mask}"


def task_spec_json(folder, template, verbalizer, labels, spec, need_task: bool) -> dict | None:
    """The task description of a prompt that records none, from the flags (or the dataset's spec)."""
    from softprompt.data import TaskSpec
    from softprompt.prompting.templates import parse_template

    if labels or verbalizer:
        names = tuple(labels or verbalizer)
        text = [f for f in parse_template(template or DEFAULT_TEMPLATE).fields if f != "label"] or ["text"]
        base = spec or TaskSpec(name=Path(folder).name, task="classification", text_fields=tuple(text),
                                label_field="label")  # fmt: skip
        return spec_json(base) | {"labels": list(names)}
    if spec is not None:
        return spec_json(spec)
    if not need_task:
        return None
    raise PromptFileError(
        f"{folder}: prompt.json records no task (imported from PEFT, or saved by save_prompt); say how "
        "to classify with --labels NEG,POS (or --verbalizer 'label=word;...') and optionally --template "
        f"(default: {DEFAULT_TEMPLATE!r})"
    )


def _load_heads(task, tensors: dict, folder: Path) -> None:
    modules = task.modules()
    if not modules:
        return
    if not tensors:
        raise PromptFileError(f"{folder}: the task needs a trained head but prompt.safetensors has none")
    from torch import nn

    target = modules["head"] if list(modules) == ["head"] else nn.ModuleDict(modules)
    try:
        target.load_state_dict(tensors)
    except RuntimeError as e:
        raise PromptFileError(
            f"{folder}: head tensors do not fit the task ({str(e).splitlines()[0]})"
        ) from None


def label_of(task, prediction):
    """A prediction as the user reads it: a label name for class ids, else unchanged (text, tag lists)."""
    if isinstance(prediction, int):
        labels = task.verbalizer.labels if getattr(task, "verbalizer", None) is not None else task.labels
        return labels[prediction]
    return prediction
