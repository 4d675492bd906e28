"""Prompt files: safetensors + JSON, never pickle; atomic writes; backbone fingerprint checked on load.

A prompt folder holds ``prompt.json`` (method, config, backbone description, template, verbalizer, form) and
``prompt.safetensors``. Two forms: ``training`` (the module's raw parameters, reparameterization included;
training resumes from it) and ``inference`` (ejected tensors ``embeds`` / ``kv`` only).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .arch import BackboneInfo
from .errors import BackboneMismatch, PromptFileError, SoftPromptError
from .methods import METHODS, make_config
from .methods.static import StaticConfig, StaticPrompt

FORMAT = "softprompt-prompt"
VERSION = 1
META, TENSORS = "prompt.json", "prompt.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give a temporary file/folder (0600/0700 from tempfile) the mode a plain open/mkdir would: the user's umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    A crash inside the block leaves ``path`` as it was (the temporary folder is removed or left as
    ``.tmp-*``, never taken for the real one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        public_mode(tmp, folder=True)
        for f in tmp.iterdir():  # flush file contents before the rename makes them visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            public_mode(f, folder=f.is_dir())
        old = None
        if path.exists():
            old = path.parent / f".old-{path.name}-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    public_mode(tmp)
    os.replace(tmp, path)


def _tensor_file(path: Path) -> Path:
    return path / TENSORS if path.is_dir() else path


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a prompt folder or .safetensors file (clear error if missing or corrupt)."""
    f = _tensor_file(Path(path))
    if not f.exists():
        raise PromptFileError(f"{f}: no such prompt file")
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise PromptFileError(f"{f}: corrupt or truncated safetensors file ({e})") from None


def read_json(f: Path, missing: str) -> dict:
    """A JSON file's object; ``PromptFileError`` saying ``missing`` when absent, or naming the file if corrupt."""
    if not f.exists():
        raise PromptFileError(missing)
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{f}: corrupt JSON ({e})") from None


def read_meta(path: str | os.PathLike) -> dict:
    f = Path(path) / META
    meta = read_json(f, f"{path}: not a prompt folder (no {META})")
    if meta.get("format") != FORMAT:
        raise PromptFileError(f"{f}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def save_prompt(model, name: str, path: str | os.PathLike, *, form: str = "training",
                extra: dict | None = None, head: torch.nn.Module | None = None) -> Path:
    """Write prompt ``name`` of ``model`` to folder ``path`` atomically, in ``form`` training|inference."""
    if form not in ("training", "inference"):
        raise SoftPromptError(f"form={form!r}; accepted: training, inference")
    module = model.bank.get(name)
    if form == "inference":
        c = module.eject()
        tensors = {k: v for k, v in (("embeds", c.embeds), ("kv", c.kv)) if v is not None}
        method = StaticConfig(num_virtual_tokens=module.config.num_virtual_tokens,
                              source_method=getattr(module.config, "source_method", "") or module.config.method)
    else:
        tensors, method = dict(module.state_dict()), module.config
    if head is not None:
        tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    meta = {"format": FORMAT, "version": VERSION, "form": form, "name": name, "config": method.to_json(),
            "backbone": model.info.to_json(), **(extra or {})}
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / TENSORS))
        (tmp / META).write_text(json.dumps(meta, indent=2))
    return Path(path)


def check_backbone(meta: dict, info: BackboneInfo, path) -> None:
    saved = BackboneInfo.from_json(meta["backbone"])
    diff = saved.mismatch(info)
    if diff:
        parts = ", ".join(f"{k}: prompt {saved.to_json()[k]!r} vs model {info.to_json()[k]!r}"
                          for k in diff if k != "slots")
        raise BackboneMismatch(f"{path}: prompt was trained for {saved.family} "
                               f"({saved.num_layers} layers, hidden {saved.hidden_size}) but the model is "
                               f"{info.family} ({info.num_layers} layers, hidden {info.hidden_size}); "
                               f"differs in {parts or 'attention slots'}")


def load_prompt(model, path: str | os.PathLike, name: str | None = None, *, check: bool = True) -> tuple[str, dict]:
    """Load a prompt folder into ``model.bank``; returns (name, metadata incl. head tensors under 'head')."""
    meta = read_meta(path)
    if check:
        check_backbone(meta, model.info, path)
    tensors = load_tensors(path)
    cfg = dict(meta["config"])
    method = cfg.pop("method")
    if method not in METHODS:
        raise PromptFileError(f"{path}: unknown method {method!r}")
    name = name or meta.get("name") or Path(path).name
    head = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    body = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    if method == "static":
        module = StaticPrompt.from_tensors(body, StaticConfig(**cfg))
    else:
        config = make_config(method, **cfg)
        cheap = {k: v for k, v in (("init", "random"), ("init_text", None), ("init_file", None)) if k in cfg}
        module = METHODS[method][1](make_config(method, **{**cfg, **cheap}), model.init_context())
        module.config = config  # values come from the file; only the stored config is kept
        try:
            module.load_state_dict(body)
        except RuntimeError as e:
            raise PromptFileError(f"{path}: tensors do not match a {method} prompt ({e})") from None
    model.bank.add(name, module.to(model.backbone.get_input_embeddings().weight.device))
    meta["head"] = head
    return name, meta
