"""Prompt files: safetensors + JSON, never pickle; atomic writes; backbone fingerprint checked on load.

A prompt folder holds ``prompt.json`` (method, config, backbone description, template, verbalizer, form) and
``prompt.safetensors``. Two forms: ``training`` (the module's raw parameters, reparameterization included;
training resumes from it) and ``inference`` (ejected tensors ``embeds`` / ``kv`` only).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from softprompt.core.arch import BackboneInfo
from softprompt.core.prompt import MethodConfig
from softprompt.errors import BackboneMismatch, ConfigError, PromptFileError, SoftPromptError
from softprompt.files.runs import reader_note
from softprompt.io.atomic import TENSORS, atomic_dir, load_tensors, read_json
from softprompt.methods import METHODS, make_config
from softprompt.methods.static import StaticConfig

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel

FORMAT = "softprompt-prompt"
VERSION = 1
META = "prompt.json"


def read_meta(path: str | os.PathLike) -> dict:
    f = Path(path) / META
    meta = read_json(f, f"{path}: not a prompt folder (no {META})")
    if meta.get("format") != FORMAT:
        raise PromptFileError(f"{f}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def save_prompt(
    model: PromptedModel,
    name: str,
    path: str | os.PathLike,
    *,
    form: str = "training",
    extra: dict | None = None,
    head: torch.nn.Module | None = None,
) -> Path:
    """Write prompt ``name`` of ``model`` to folder ``path`` atomically, in ``form`` training|inference."""
    if form not in ("training", "inference"):
        raise SoftPromptError(f"form={form!r}; accepted: training, inference")
    module = model.bank.get(name)
    method: MethodConfig
    if form == "inference":
        c = module.eject()
        tensors = {k: v for k, v in vars(c).items() if v is not None}  # embeds / kv / adapter
        method = StaticConfig(
            num_virtual_tokens=module.config.num_virtual_tokens,
            source_method=getattr(module.config, "source_method", "") or module.config.method,
        )
    else:
        tensors, method = dict(module.state_dict()), module.config
    if head is not None:
        tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "form": form,
        "name": name,
        "config": method.to_json(),
        "backbone": model.info.to_json(),
        **(extra or {}),
    }
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / TENSORS))
        (tmp / META).write_text(json.dumps(meta, indent=2))
    return Path(path)


def _check_keys(where: str, given: dict, cls) -> None:
    """Name the keys of ``given`` that ``cls`` lacks, and the fields without a default that ``given`` lacks."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = [k for k in given if k not in known]
    if extra:
        raise PromptFileError(
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}; accepted: {', '.join(known)} "
            "(written by another softprompt version, or edited by hand?)"
        )
    no_default = dataclasses.MISSING
    missing = [
        name
        for name, f in known.items()
        if name not in given and f.default is no_default and f.default_factory is no_default
    ]
    if missing:
        raise PromptFileError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")


def resolve_prompt_dir(path: str | os.PathLike) -> Path:
    """A prompt folder, or a run folder (its best prompt, else its final one, when it trained one prompt).

    A run folder whose run is not finished (still training, failed, interrupted) is read all the same, with a
    one-line warning saying so (``files.runs.reader_note``)."""
    p = Path(path)
    if (p / META).exists():
        return p
    if (p / "run.json").exists():
        note = reader_note(p)  # a run that is still training, failed, or was interrupted: say so in one line
        if note is not None:
            warnings.warn(note, stacklevel=1)  # (one place: shown once however often the folder is read)
        for kind in ("best", "final"):
            found = sorted(d for d in (p / kind).glob("[!.]*") if (d / META).exists())
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ConfigError(f"run {p} trained several prompts; give one: {', '.join(map(str, found))}")
        raise PromptFileError(f"run {p} has no saved prompt yet (no best/ or final/ folder)")
    raise PromptFileError(f"{p}: neither a prompt folder ({META}) nor a run folder (run.json)")


def check_meta(meta: dict, path: str | os.PathLike) -> None:
    """``prompt.json``'s ``config`` and ``backbone`` hold exactly the keys their classes take.

    A key whose field has a default may be absent (files written before the field existed load with it).

    Raises:
        PromptFileError: naming the file, the section and the key.
    """
    f = Path(path) / META
    for section in ("config", "backbone"):
        if not isinstance(meta.get(section), dict):
            raise PromptFileError(f"{f}: {section!r} is missing or not a JSON object")
    if not isinstance(meta.get("name", ""), str):
        raise PromptFileError(f"{f}: 'name' must be a string, got {meta['name']!r}")
    method = meta["config"].get("method")
    if method is not None and not isinstance(method, str):
        raise PromptFileError(f"{f}: config: 'method' must be a string, got {method!r}")
    if method is None:
        raise PromptFileError(f"{f}: config: missing key 'method' (one of: {', '.join(METHODS)})")
    if method not in METHODS:
        raise PromptFileError(f"{f}: config: unknown method {method!r}; known: {', '.join(METHODS)}")
    _check_keys(f"{f}: config", meta["config"], METHODS[method].config)
    _check_keys(f"{f}: backbone", meta["backbone"], BackboneInfo)
    if not isinstance(meta["backbone"].get("fingerprint", ""), str):
        raise PromptFileError(f"{f}: backbone: 'fingerprint' must be a string")
    slots = meta["backbone"]["slots"]
    if not isinstance(slots, list) or not all(isinstance(s, list) and len(s) == 2 for s in slots):
        raise PromptFileError(f"{f}: backbone: 'slots' must be a list of [role, layer] pairs")


def recorded_template(meta: dict, path: str | os.PathLike) -> str | None:
    """The template a trained prompt was trained with, as ``prompt.json`` records it (None: no task recorded, or a
    labeling task, which reads no template).

    A prompt saved by ``softprompt train`` for a task that reads its input through a template (classification,
    probing, generation) must record it: without it the prompt would run under another template and score
    differently, silently.

    Raises:
        PromptFileError: naming the file, the key and what it should hold.
    """
    spec = meta.get("spec")
    if not isinstance(spec, dict) or spec.get("task") in (None, "labeling"):
        return None
    template = meta.get("template")
    if isinstance(template, str) and template.strip():
        return template
    f = Path(path) / META
    found = "is missing" if "template" not in meta else f"is {json.dumps(template)}"
    raise PromptFileError(
        f"{f}: key 'template' {found}; this prompt was trained for the {spec['task']} task "
        f"{spec.get('name', '?')!r}, which reads its input through a template, and would score differently "
        "under another one. It should hold the template it was trained with as a string, e.g. "
        '"{text} It was {mask}." (the run folder\'s run.json records it under prompts[].template); '
        "or give it with --template"
    )


def check_backbone(meta: dict, info: BackboneInfo, path: str | os.PathLike) -> None:
    saved = BackboneInfo.from_json(meta["backbone"])
    diff = saved.mismatch(info)
    if diff:
        parts = ", ".join(
            f"{k}: prompt {saved.to_json()[k]!r} vs model {info.to_json()[k]!r}" for k in diff if k != "slots"
        )
        raise BackboneMismatch(
            f"{path}: prompt was trained for {saved.family} "
            f"({saved.num_layers} layers, hidden {saved.hidden_size}) but the model is "
            f"{info.family} ({info.num_layers} layers, hidden {info.hidden_size}); "
            f"differs in {parts or 'attention slots'}"
        )


def load_prompt(
    model: PromptedModel, path: str | os.PathLike, name: str | None = None, *, check: bool = True
) -> tuple[str, dict]:
    """Load a prompt folder into ``model.bank``; returns (name, metadata incl. head tensors under 'head')."""
    meta = read_meta(path)
    check_meta(meta, path)
    if check:
        check_backbone(meta, model.info, path)
    tensors = load_tensors(path)
    cfg = dict(meta["config"])
    method = cfg.pop("method")
    name = name or meta.get("name") or Path(path).name
    head = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    body = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    try:
        module = _module(model, method, cfg, body, path)
    except ConfigError as e:
        raise PromptFileError(f"{Path(path) / META}: config: {e}") from None
    model.put_prompt(name, module)  # on the model's device, in its mode (eval for use)
    meta["head"] = head
    return name, meta


def _module(model, method: str, cfg: dict, body: dict, path):
    spec = METHODS[method]
    if spec.from_tensors is not None:  # a form whose shapes only the file knows (the ejected one)
        module = spec.from_tensors(body, spec.config(**cfg))
    else:
        config = make_config(method, **cfg)
        cheap = {k: v for k, v in spec.load_fields.items() if k in cfg}  # values come from the file
        module = spec.module(make_config(method, **{**cfg, **cheap}), model.init_context())
        module.config = config  # values come from the file; only the stored config is kept
        try:
            module.load_state_dict(body)
        except RuntimeError as e:
            raise PromptFileError(f"{path}: tensors do not match a {method} prompt ({e})") from None
    return module
