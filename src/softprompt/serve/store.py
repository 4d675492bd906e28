"""The prompt store: every prompt folder and run folder directly inside one directory, by folder name.

Each load gets a new *version* from a counter; the prompt sits in the model's bank under ``p<version>`` (so a
name removed and loaded again never shares anything with its old self), and its key/value prefix for generation
is computed once per version. A removed prompt leaves the bank only when its last running request ends.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from softprompt.core.bank import NAME
from softprompt.core.kv_capture import prompt_kv_of, virtual_tokens_as_prefix
from softprompt.core.prompt import Contribution
from softprompt.errors import ConfigError, PromptFileError, SoftPromptError
from softprompt.files.prompts import load_prompt, resolve_prompt_dir
from softprompt.serve.refusals import BaseNotRemovable, UnknownPrompt
from softprompt.serve.served import Registry

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.tasks.base import Task

BASE = "base"
"""The model name that means the plain backbone (no prompt)."""


@dataclass
class Entry:
    """One loaded prompt version."""

    name: str
    key: str  # name in the model's bank: "p<version>"
    version: int
    path: Path | None  # None: added in Python (PromptStore.adopt)
    method: str
    virtual_tokens: int
    prefix: Contribution | None  # generation: a key/value prefix (input-level prompts converted), or None
    task: Task | None = None  # classification task (prompts saved by `softprompt train`)
    labels: list[str] | None = None
    meta: dict = field(default_factory=dict)
    active: int = 0  # requests holding this version
    removed: bool = False


class PromptStore:
    """Named prompt versions on one ``PromptedModel``.

    ``lock`` guards the model (the engine holds it for each step; loading a prompt takes it). The names have
    their own small lock, so looking a prompt up never waits for a forward. Removed versions leave the bank in
    ``collect``, which the engine calls at every step.
    """

    def __init__(self, model: PromptedModel, root: str | Path | None = None) -> None:
        self.model = model
        self.root = None if root is None else Path(root).resolve()
        self.registry = Registry(self.root or Path("."))
        self.lock = threading.RLock()
        self._names = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._dead: list[str] = []  # bank keys of removed versions no request holds any more
        self._counter = 0

    def load_all(self) -> list[str]:
        """Load every prompt/run folder directly inside the root (sorted by name), then apply what the HTTP API
        added and removed (``registry.FILE``); returns the names.

        A folder whose name cannot be a prompt name (not 1-128 ASCII letters, digits, '_' or '-', or the
        reserved ``base``), or that does not load (half-written, damaged, another backbone's), is skipped with a
        warning naming it and why; the others are served.
        """
        if self.root is None or not self.root.is_dir():
            raise PromptFileError(f"--prompts {self.root}: not a directory")
        added, removed = self.registry.read()
        found: dict[str, Path] = {}
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not ((d / "prompt.json").exists() or (d / "run.json").exists()) or d.name in removed:
                continue
            if d.name == BASE or not NAME.match(d.name):
                why = (
                    f"{BASE!r} is reserved for the plain backbone"
                    if d.name == BASE
                    else "a prompt name takes 1-128 ASCII letters, digits, '_' or '-'"
                )
                self._skip(d.name, f"{why}; rename it to serve it")
                continue
            found.setdefault(d.name, d)
        for name, rel in added.items():
            found[name] = self.root / rel
        names = []
        for name, folder in found.items():
            try:
                names.append(self.add(name, folder).name)
            except SoftPromptError as e:
                self._skip(folder.name, f"{' '.join(str(e).split())}; it is not served")
        return names

    def _skip(self, folder: str, why: str) -> None:
        warnings.warn(f"--prompts {self.root}: skipped folder {folder!r}: {why}", stacklevel=3)

    def add_kept(self, name: str, path: Path) -> Entry:
        """``add``, then remembered across restarts (``POST /v1/prompts``)."""
        entry = self.add(name, path)
        self.registry.added(name, path)
        return entry

    def remove_kept(self, name: str) -> Entry:
        """``remove``, then remembered across restarts (``DELETE /v1/prompts/{name}``)."""
        entry = self.remove(name)
        if self.root is not None:
            self.registry.removed(name)
        return entry

    def inside_root(self, path: str) -> Path:
        """``path`` (relative to the root, or absolute) resolved, refused when it leaves the root."""
        if self.root is None:
            raise ConfigError("this server has no prompts directory; prompts cannot be added")
        try:
            p = (self.root / path).resolve()
        except (ValueError, OSError) as e:  # a NUL byte, a name too long for the file system, a loop
            raise ConfigError(f"path {path!r} is not a usable path: {e}") from None
        if p != self.root and self.root not in p.parents:
            raise ConfigError(f"path {path!r} is outside the prompts directory {self.root}")
        try:
            folder = p.is_dir()
        except (ValueError, OSError) as e:
            raise ConfigError(f"path {path!r} is not a usable path: {e}") from None
        if not folder:
            raise PromptFileError(f"path {path!r}: no such folder in {self.root}")
        return p

    def add(self, name: str, path: str | Path) -> Entry:
        """Load the prompt (or run) folder ``path`` as ``name``; a new version."""
        folder = resolve_prompt_dir(path)
        with self._names:
            self._check_name(name)
        with self.lock:
            with self._names:
                self._counter += 1
                version = self._counter
            key = f"p{version}"
            key, meta = load_prompt(self.model, folder, key)
            try:
                entry = self._entry(name, key, version, folder, meta)
            except SoftPromptError:
                self.model.bank.remove(key)
                raise
            with self._names:
                try:
                    self._check_name(name)  # another add of this name may have won meanwhile
                except ConfigError:
                    self.model.bank.remove(key)
                    raise
                self._entries[name] = entry
            return entry

    def adopt(self, name: str) -> Entry:
        """Serve prompt ``name`` that is already in the model's bank (added in Python), under that name."""
        with self.lock:
            self._check_name(name)
            module = self.model.bank.get(name)
            self._counter += 1
            entry = self._entry(
                name, name, self._counter, None, {"config": module.config.to_json(), "head": {}}
            )
            self._entries[name] = entry
            return entry

    def _check_name(self, name: str) -> None:
        if name == BASE:
            raise ConfigError(f"name={BASE!r} is reserved for the plain backbone")
        if not NAME.match(name or ""):
            raise ConfigError(f"name={name!r} is not accepted; use 1-128 letters, digits, '_' or '-'")
        if name in self._entries:
            raise ConfigError(f"name={name!r} is already served; DELETE /v1/prompts/{name} first")

    def _entry(self, name, key, version, folder, meta) -> Entry:
        module = self.model.bank.get(key)
        cfg = meta["config"]
        with torch.no_grad():
            c = module.contribute()
            prefix = None
            if c.kv is not None or c.adapter is not None:  # an adaption prompt's adapter rides along
                prefix = Contribution(**{k: None if v is None else v.detach() for k, v in vars(c).items()})
            elif c.embeds is not None and virtual_tokens_as_prefix(self.model):
                prefix = prompt_kv_of(self.model, module)  # once per version, shared by every row
        from softprompt.serve.tasks import build_task

        task, labels = build_task(self.model, meta, folder, key)
        return Entry(
            name=name,
            key=key,
            version=version,
            path=folder,
            method=cfg.get("source_method") or cfg["method"],
            virtual_tokens=module.config.num_virtual_tokens,
            prefix=prefix,
            task=task,
            labels=labels,
            meta={k: v for k, v in meta.items() if k != "head"},
        )

    def remove(self, name: str) -> Entry:
        """Stop serving ``name``: new requests get UnknownPrompt; running ones finish on their version.

        Raises:
            BaseNotRemovable: for ``base`` (the plain backbone is always served).
            UnknownPrompt: for a name that is not served.
        """
        if name == BASE:
            raise BaseNotRemovable()
        with self._names:
            entry = self.get(name)
            del self._entries[name]
            entry.removed = True
            self._drop_if_idle(entry)
        if self.lock.acquire(blocking=False):  # else the engine's next step collects it
            try:
                self.collect()
            finally:
                self.lock.release()
        return entry

    def get(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownPrompt(name, self.names())
        return entry

    def acquire(self, name: str | None) -> Entry | None:
        """The current version of ``name`` (None for the plain backbone), held until ``release``."""
        if name is None or name == BASE:
            return None
        with self._names:
            entry = self.get(name)
            entry.active += 1
            return entry

    def release(self, entry: Entry | None) -> None:
        if entry is None:
            return
        with self._names:
            entry.active -= 1
            self._drop_if_idle(entry)

    def _drop_if_idle(self, entry: Entry) -> None:
        if entry.removed and entry.active == 0:
            self._dead.append(entry.key)

    def collect(self) -> None:
        """Take removed, idle versions out of the model's bank (call with ``lock`` held)."""
        with self._names:
            dead, self._dead = self._dead, []
        for key in dead:
            if key in self.model.bank:
                self.model.bank.remove(key)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())
