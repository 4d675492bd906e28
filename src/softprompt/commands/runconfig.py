"""What ``softprompt train`` runs: a YAML file (``--config``) overridden by flags, checked before any loading.

YAML layout (every key optional; flags win)::

    model: smollm2-135m
    method: prompt-tuning
    dataset: rotten-tomatoes
    out: runs/pt
    name: rt                  # prompt name (default: the dataset's)
    method_args: {num_virtual_tokens: 20, init: vocab}
    train: {steps: 200, batch_size: 8, lr: 3.0e-2}
    task: {template: "Review: {text}\\nSentiment: {mask}", verbalizer: {positive: [good], negative: [bad]}}

The layout is a pydantic model built from ``TrainConfig``'s and ``TaskOptions``' fields (unknown keys
forbidden, values typed as the fields are); ``method_args`` is typed against the chosen method's config once
the method is known. Range checks are declared on the dataclasses' fields (``Annotated[int, Field(ge=..)]``) and
run by their ``__post_init__`` (``errors.check_fields``) on YAML and flags merged.
"""

from __future__ import annotations

import argparse
import functools
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from softprompt.commands.fields import PYDANTIC_CONFIG, Field, coerce, explain, fields_of, given, typed
from softprompt.errors import ConfigError, check_fields
from softprompt.methods import METHODS, TRAINABLE, MethodConfig, make_config
from softprompt.tasks import Head
from softprompt.tasks.base import MAX_LENGTH
from softprompt.training.config import TrainConfig

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

TOP = ("model", "method", "dataset", "out", "name", "method_args", "train", "task")
REQUIRED = ("method", "dataset")
DEFAULT_MODEL = "smollm2-135m"  # the embedded default backbone (the demo's)


@dataclass(kw_only=True)
class TaskOptions:
    """How examples become model inputs."""

    template: str | None = None
    """Hard-prompt template ({text}, {mask}, {soft:N}); default: the dataset's first."""
    verbalizer: dict[str, list[str] | str] | None = None
    """Label words (a word or a list per label): JSON or 'label=word,word;label=word'; default: the dataset's
    for the template."""
    head: Head | None = None
    """lm: score label words; first/last/mean/max: train a pooled classification head; auto (default): lm when
    the model has a language-model head, else the pooling a sentence-transformers checkpoint was trained with
    (its 1_Pooling/config.json: mean for minilm-l6), else first."""
    fields: dict[str, str] | None = None
    """Your data's columns as ours=theirs: 'text=review,label=stars' (own data only)."""
    limit: Annotated[int, pydantic.Field(ge=1)] | None = None
    """Keep at most N examples per split (a seeded sample of train); >= 1."""
    max_length: Annotated[int, pydantic.Field(ge=8, le=65_536)] = MAX_LENGTH
    """Tokens per input, virtual tokens included; 8..65536."""

    def __post_init__(self):
        check_fields(self)


SECTIONS = {"train": TrainConfig, "task": TaskOptions}  # YAML sections checked field by field


@dataclass
class RunSettings:
    model: str
    method: str
    dataset: str
    out: Path
    name: str | None
    method_config: MethodConfig
    method_args: dict
    train: TrainConfig
    task: TaskOptions
    train_given: frozenset = frozenset()
    """The training settings the user set (flags or --config); the others are the method's defaults."""
    more_datasets: tuple[str, ...] = ()
    """Further source datasets (``--dataset`` repeated): multitask prompt tuning's tasks 1.. (``dataset`` is 0)."""


def method_fields() -> list[Field]:
    """Every field of every trainable method's config (once), for the flags."""
    seen: dict[str, Field] = {}
    for method in TRAINABLE:
        for f in fields_of(METHODS[method].config, skip=("method", "source_method")):
            old = seen.setdefault(f.name, f)
            literals = all(typing.get_origin(h) is Literal for h in (old.hint, f.hint))
            if old.hint != f.hint and literals:  # two methods' `init` choices: the flag accepts both
                choices = dict.fromkeys(typing.get_args(old.hint) + typing.get_args(f.hint))
                seen[f.name] = Field(f.name, Literal[tuple(choices)], None, old.doc)
    return list(seen.values())


def methods_with(name: str) -> list[str]:
    return [m for m in TRAINABLE if name in {f.name for f in fields_of(METHODS[m].config)}]


def load_yaml(path: str) -> dict:
    """The file's settings, typed and checked against the layout (pydantic); ConfigError naming the key."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of {', '.join(TOP)}")
    return check_layout(doc, path)


def check_layout(doc: dict, where: str) -> dict:
    """``doc`` validated by the pydantic model of the layout: the keys given, with typed values."""
    from pydantic import ValidationError

    try:
        checked = _layout().model_validate(doc)
    except ValidationError as e:
        raise ConfigError(f"{where}: {_first_problem(e.errors(), doc)}") from None
    return checked.model_dump(exclude_unset=True)


def _first_problem(errors: Sequence[Mapping[str, Any]], doc: dict) -> str:
    """The most useful of pydantic's errors as one message: unknown keys, then non-mappings, then values."""
    unknown = [e["loc"][0] for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    if unknown:
        return f"unknown key(s) {', '.join(map(str, unknown))}; accepted: {', '.join(TOP)}"
    for e in errors:
        section, *rest = e["loc"]
        if not rest and section in (*SECTIONS, "method_args"):
            return f"'{section}' must be a mapping of field: value"
        if e["type"] == "extra_forbidden":
            accepted = ", ".join(f.name for f in fields_of(SECTIONS[section]))
            return f"unknown field {section}.{rest[0]}; accepted: {accepted}"
    e = errors[0]
    key, *rest = e["loc"]
    if not rest:
        return explain(key, e, str | None, doc[key])
    return explain(f"{key}.{rest[0]}", e, _hints(SECTIONS[key])[rest[0]], doc[key][rest[0]])


@functools.cache
def _layout():
    """The pydantic model of the YAML layout, built from the dataclasses' fields (every key optional)."""
    from pydantic import ConfigDict, create_model

    config = ConfigDict(**PYDANTIC_CONFIG)

    def section(cls):
        fields: dict[str, Any] = {
            name: (typed(hint), None) for name, hint in _hints(cls).items()
        }  # unset ones dropped
        return create_model(cls.__name__ + "Section", __config__=config, **fields)

    return create_model(  # type: ignore[call-overload]  # pydantic's stubs take no `X | None` value as a field type
        "RunFile",
        __config__=config,
        **{k: (typed(str | None), None) for k in ("model", "method", "dataset", "out", "name")},
        method_args=(dict[str, typing.Any] | None, None),
        **{name: (section(cls) | None, None) for name, cls in SECTIONS.items()},
    )


def _hints(cls) -> dict:
    return {f.name: f.hint for f in fields_of(cls)}


def _section(doc: dict, args: argparse.Namespace, section: str) -> dict:
    """The YAML's (already typed) values of ``section``, then the typed flags on top."""
    return {**(doc.get(section) or {}), **given(args, section)}


def resolve(args: argparse.Namespace) -> RunSettings:
    """Merge ``--config`` and flags; check the method, training and task settings (no model loaded yet)."""
    doc = load_yaml(args.config) if getattr(args, "config", None) else {}
    top = {k: doc.get(k) for k in ("model", "method", "dataset", "out", "name")}
    top.update({k: v for k, v in given(args, "top").items() if v is not None})
    missing = [k for k in REQUIRED if not top.get(k)]
    if missing:
        raise ConfigError(
            f"missing {', '.join('--' + k for k in missing)} (give the flags or set them in --config)"
        )
    method = str(top["method"])
    if method not in TRAINABLE:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(TRAINABLE)}")
    datasets = [str(d) for d in top["dataset"]] if isinstance(top["dataset"], list) else [str(top["dataset"])]
    if method != "multitask-prompt-tuning":
        datasets = datasets[-1:]  # one task: the last --dataset wins, as any repeated flag
    top["dataset"] = datasets[0]
    top["model"] = top["model"] or DEFAULT_MODEL
    stem = str(top["dataset"]) if len(datasets) == 1 else "+".join(Path(d).stem for d in datasets)
    top["out"] = top["out"] or default_out(method, stem, getattr(args, "resume", False))
    method_cls = METHODS[method].config
    hints = {f.name: f.hint for f in fields_of(method_cls)}
    method_args = {
        k: coerce(f"method_args.{k}", v, hints[k]) if k in hints else v
        for k, v in (doc.get("method_args") or {}).items()
    }
    method_args.update(given(args, "method_args"))
    if len(datasets) > 1:
        method_args = several_sources(datasets, method_args, top["name"])
    return RunSettings(
        model=str(top["model"]),
        method=method,
        dataset=str(top["dataset"]),
        out=Path(str(top["out"])),
        name=None if top["name"] is None else str(top["name"]),
        method_config=make_config(method, **method_args),
        method_args=method_args,
        train=TrainConfig.for_method(method, **_section(doc, args, "train")),
        task=TaskOptions(**_section(doc, args, "task")),
        train_given=frozenset(_section(doc, args, "train")),
        more_datasets=tuple(datasets[1:]),
    )


def several_sources(datasets: list[str], method_args: dict, name: object) -> dict:
    """The method options of a multitask prompt-tuning run over several datasets (``--dataset`` repeated): one
    task per dataset (``num_tasks`` = their number; task ids follow the ``--dataset`` order)."""
    n = len(datasets)
    if method_args.get("num_tasks", n) != n:
        raise ConfigError(f"--num-tasks {method_args['num_tasks']} but --dataset is given {n} times: give one "
                          "dataset per task (or leave --num-tasks out)")  # fmt: skip
    if "task_id" in method_args:
        raise ConfigError("--task-id with several --dataset: task ids follow the --dataset order (0, 1, ...)")
    if name is not None:
        raise ConfigError("--name with several --dataset: each task's prompt is named after its dataset")
    return {**method_args, "num_tasks": n}


def default_out(method: str, dataset: str, resume: bool) -> Path:
    """``runs/<dataset>-<method>`` when ``--out`` is not given; ``-2``, ``-3``... when that folder already holds
    something, so a repeated command never trips over the last run. Several processes (torchrun/accelerate)
    must agree without a shared decision, so there the first name is used as is."""
    if resume:
        raise ConfigError("--resume needs --out: the run folder to continue")
    base = Path("runs") / f"{Path(dataset).stem or 'data'}-{method}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return base
    out, n = base, 1
    while out.exists() and (not out.is_dir() or any(out.iterdir())):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out
