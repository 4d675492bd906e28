"""Loading a prompt saved by ``softprompt train`` (or imported from PEFT) together with the task it was trained
for: evaluate, predict, generate and peft export start here."""

from __future__ import annotations

from pathlib import Path

from softprompt.commands.common import make_task_for
from softprompt.commands.devices import load_backbone
from softprompt.errors import ConfigError, PromptFileError


def load_trained(
    path: str,
    model_name: str | None,
    *,
    template: str | None = None,
    verbalizer: dict | None = None,
    labels: list[str] | None = None,
    spec=None,
    need_task: bool = True,
    device: str = "auto",
    dtype: str = "float32",
):
    """(model, prompt name, metadata, task) for a saved prompt.

    A prompt saved by ``softprompt train`` rebuilds its own task; ``template`` / ``verbalizer`` / ``labels``
    (the --template / --verbalizer / --labels flags) override it. A prompt without a recorded task (PEFT
    import, ``save_prompt``) needs ``labels`` or ``verbalizer`` (or a dataset ``spec``) to classify; with
    ``need_task=False`` (generate, peft export) it loads as is and the task is None.
    """
    from softprompt.data.spec import TaskSpec
    from softprompt.files.prompts import (
        check_meta,
        load_prompt,
        read_meta,
        recorded_template,
        resolve_prompt_dir,
    )
    from softprompt.tasks import saved_head
    from softprompt.tasks.base import load_heads

    folder = resolve_prompt_dir(path)
    meta = read_meta(folder)
    check_meta(meta, folder)  # a hand-edited prompt.json fails before the model loads
    if "spec" in meta and not isinstance(meta["spec"], dict):
        raise PromptFileError(f"{folder / 'prompt.json'}: 'spec' must be a JSON object")
    model_name = model_name or meta.get("model")
    if not model_name:
        raise ConfigError(f"{folder} does not record its model; pass --model")
    recorded = meta.get("spec")
    if recorded:  # a broken recorded task fails before the model loads
        saved = template or recorded_template(meta, folder)  # --template stands in for a missing one
        TaskSpec.from_json(recorded, saved, str(folder / "prompt.json"))
    spec_d = recorded or task_spec_json(folder, template, verbalizer, labels, spec, need_task)
    if recorded and (labels or verbalizer):
        spec_d = recorded | {"labels": list(labels or verbalizer)}
    model = load_backbone(model_name, device=device, dtype=dtype)
    name, meta = load_prompt(model, folder)
    if spec_d is None:
        return model, name, meta, None
    meta["spec"] = spec_d  # what predict / generate read (built from the flags for a prompt without a task)
    if not recorded:
        template = template or (spec.default_templates[0] if spec and spec.default_templates else None)
    template = template or meta.get("template") or (None if recorded else DEFAULT_TEMPLATE)
    spec_obj = TaskSpec.from_json(spec_d, template, str(folder / "prompt.json"))
    virtual = model.bank.get(name).config.num_virtual_tokens
    task = make_task_for(
        model,
        spec_obj,
        template=template,
        verbalizer=verbalizer or (None if labels else meta.get("verbalizer")),
        head=saved_head(model, meta.get("task_head")),
        virtual_tokens=virtual,
        max_length=meta.get("max_length", 256),
    )
    load_heads(task, meta["head"], folder)  # load_prompt puts the head tensors under "head"
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
