"""What several commands share: output, building a task the way training did, and loading a trained prompt."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from softprompt.commands.devices import add_model_flags, load_backbone, model_flags
from softprompt.errors import ConfigError, PromptFileError, TemplateError, VerbalizerError

__all__ = [
    "add_model_flags",
    "load_backbone",
    "model_flags",
]  # re-exported: every model-loading command uses them


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
def check_verbalizer(verbalizer: dict | None, spec) -> None:
    """Every label of a classification dataset needs words (a string or a list of strings), and no others."""
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


def model_kind(name: str) -> str | None:
    """causal / masked / seq2seq / encoder, read off the checkpoint's config alone (None when it cannot tell)."""
    from transformers import AutoConfig

    from softprompt.files.assets import resolve_model

    try:
        config = AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError):
        return None  # loading the model names the problem
    archs = " ".join(getattr(config, "architectures", None) or [])
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if "CausalLM" in archs or "LMHead" in archs or getattr(config, "is_decoder", False):
        return "causal"
    if "MaskedLM" in archs or "ForPreTraining" in archs:
        return "masked"
    return "encoder" if archs else None


def check_template(template: str | None, spec=None, *, kind: str | None = None, head: str | None = None):
    """Parse ``template`` and check it against the dataset's fields and the model's kind, before loading them.

    Raises:
        TemplateError: a syntax error (with its column), a field the data lacks, or no ``{mask}`` where a
            masked LM needs one.
    """
    if template is None:
        return
    from softprompt.prompting.templates import parse_template

    parsed = parse_template(template)
    if spec is None or spec.task == "labeling":  # labeling tags every token: no template
        return
    if not parsed.fields:
        raise TemplateError(
            f"template {template!r} uses no field, so every example would look the same; put "
            f"{' or '.join('{' + f + '}' for f in spec.text_fields)} where the input goes"
        )
    unknown = [f for f in parsed.fields if f not in spec.text_fields]
    if unknown:
        raise TemplateError(
            f"template {template!r} uses field {unknown[0]!r}, which dataset {spec.name!r} does not have; "
            f"its fields: {', '.join(spec.text_fields)} (map your columns onto them with --fields)"
        )
    scored_at_mask = (
        kind == "masked" and head in (None, "auto", "lm") and spec.task in ("classification", "probing")
    )
    if scored_at_mask and not parsed.has_mask:
        raise TemplateError(
            f"template {template!r} has no {{mask}} slot; a masked LM scores the label words at the mask: "
            "put {mask} where the answer goes (e.g. '{text} It was {mask}.'), or use --head first|last|mean|max"
        )


def context_limit(model) -> int | None:
    """Positions the backbone can take: its learned positions, else its config's (RoPE models), else None."""
    limit = model.info.max_positions or getattr(model.backbone.config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def make_task_for(model, spec, *, template, verbalizer, head, virtual_tokens: int, max_length: int = 256):
    """``make_task`` with inputs cut to fit both ``max_length`` and the model's context."""
    from softprompt.tasks import make_task

    check_verbalizer(verbalizer, spec)
    limit = context_limit(model)
    max_length = min(max_length, limit) if limit else max_length
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


def check_replaceable(path: str, files: tuple[str, ...], what: str) -> None:
    """``path`` may be (re)written as a ``what`` folder: it is new, empty, or holds only ``files``.

    The folder is replaced as a whole (atomically), so anything else in it would be lost.

    Raises:
        ConfigError: naming the folder and what it holds.
    """
    p = Path(path).expanduser()
    if not p.exists():
        return
    if not p.is_dir():
        raise ConfigError(f"--out {path} is a file; give a new folder for the {what}")
    others = sorted(f.name for f in p.iterdir() if f.name not in files)
    if others:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise ConfigError(
            f"--out {path} holds other files ({shown}) and would be replaced as a whole; give a new or empty "
            f"folder, or an existing {what} folder"
        )


# ----- trained prompts --------------------------------------------------------------------------------------
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
    from softprompt.files.prompts import check_meta, load_prompt, read_meta, resolve_prompt_dir
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
        TaskSpec.from_json(recorded, meta.get("template"), str(folder / "prompt.json"))
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


def check_rows(rows: list[dict], task, source: str, fields: dict | None = None) -> None:
    """Every input row holds, as text, each field the prompt reads (numbers become text; labeling rows' tokens
    may be one string). Raises DataError naming the source, the row (and line) and the field."""
    from softprompt.data.textfiles import line_of
    from softprompt.errors import DataError

    tokens = getattr(task, "tokens_field", None)
    template = getattr(task, "template", None)
    needed = [tokens] if tokens else list(template.fields) if template is not None else []
    for i, row in enumerate(rows, 1):
        at = f"{source}: row {i}{line_of(row)}"
        for f in needed:
            value = row.get(f)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = row[f] = str(value)
            if f == tokens and isinstance(value, str):
                value = row[f] = value.split()
            if not value or (isinstance(value, str) and not value.strip()):
                theirs = (fields or {}).get(f)
                named = f"{f!r}" + (f" (or column {theirs!r})" if theirs and theirs != f else "")
                raise DataError(
                    f"{at} has no {named} value; the prompt reads: {', '.join(needed)} "
                    f"(this row has: {', '.join(row) or 'nothing'})"
                )
            if f != tokens and not isinstance(value, str):
                raise DataError(f"{at}: {f!r} is a JSON {type(value).__name__}; accepted: a string")


def label_of(task, prediction):
    """A prediction as the user reads it: a label name for class ids, else unchanged (text, tag lists)."""
    if isinstance(prediction, int):
        labels = task.verbalizer.labels if getattr(task, "verbalizer", None) is not None else task.labels
        return labels[prediction]
    return prediction
