"""What several commands share: output, building a task the way training did, checking input rows.

Loading a trained prompt (``load_trained``) lives in ``commands.backbone``."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from softprompt.commands.backbone import add_model_flags, load_backbone, model_flags
from softprompt.errors import ConfigError, TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.data.spec import TaskSpec
    from softprompt.tasks.base import Task

__all__ = [
    "add_model_flags",
    "load_backbone",
    "model_flags",
]  # re-exported: every model-loading command uses them


def add_prompt_flags(parser: argparse.ArgumentParser) -> None:
    """``--prompt`` (repeatable: an ensemble) and ``--combine``, for the commands that score with saved prompts."""
    parser.add_argument(
        "--prompt",
        required=True,
        action="append",
        metavar="DIR",
        help="a prompt folder, or a run folder; repeat it for an ensemble (all scored in one batch)",
    )
    parser.add_argument(
        "--combine",
        choices=("mean", "vote"),
        default="mean",
        help="an ensemble's combination: mean of probabilities, or majority vote (default: mean)",
    )


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun launch (only rank 0 prints)."""
    return int(os.environ.get("RANK", "0")) == 0


def quiet_loading() -> None:
    """No transformers progress bars ("Loading weights") on stderr."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def print_json(obj: object) -> None:
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
def model_kind(name: str) -> str | None:
    """causal / masked / seq2seq / encoder, read off the checkpoint's config alone (None when it cannot tell)."""
    from transformers import AutoConfig

    from softprompt.assets import resolve_model

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


def check_template(
    template: str | None, spec: TaskSpec | None = None, *, kind: str | None = None, head: str | None = None
) -> None:
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


def init_token_ids(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[int | None]:
    """Per virtual token of the task's template, the id a ``{soft:"words"}`` slot starts it from (else None)."""
    template = getattr(task, "template", None)
    return (
        []
        if template is None or not hasattr(template, "init_token_ids")
        else template.init_token_ids(tokenizer)
    )


def label_words(task: Task) -> list[str]:
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


def check_rows(rows: list[dict], task: Task, source: str, fields: dict | None = None) -> None:
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


def label_of(task: Task, prediction: object) -> object:
    """A prediction as the user reads it: a label name for class ids, else unchanged (text, tag lists)."""
    if isinstance(prediction, int):
        verbalizer = getattr(task, "verbalizer", None)
        labels = verbalizer.labels if verbalizer is not None else getattr(task, "labels", [])
        return labels[prediction]
    return prediction
