"""One atomic-write helper for every file softprompt writes, and the safe readers (safetensors, JSON; never pickle).

A crash mid-write leaves the old file or folder as it was: content goes to a temporary sibling, is fsynced,
and replaces the target in one rename. Modes follow the user's umask (tempfile's 0600/0700 would not).
``build_once`` builds a cache folder once across processes, under a ``filelock`` lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from softprompt.errors import PromptFileError

TENSORS = "prompt.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give a temporary file/folder (0600/0700 from tempfile) the mode a plain open/mkdir would: the user's umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


_WRITE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                 errno.EPERM: "permission denied"}  # fmt: skip


@contextlib.contextmanager
def write_errors_named(path: Path) -> Iterator[None]:
    """A full disk or a read-only / unwritable folder while writing ``path`` raises PromptFileError naming it."""
    try:
        yield
    except PromptFileError:
        raise
    except OSError as e:
        if e.errno not in _WRITE_ERRORS:
            raise
        raise PromptFileError(
            f"cannot write {path}: {_WRITE_ERRORS[e.errno]} ({e.strerror}); nothing was changed there"
        ) from None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    A crash inside the block leaves ``path`` as it was (the temporary folder is removed or left as
    ``.tmp-*``, never taken for the real one). A full disk or an unwritable folder raises PromptFileError
    naming ``path``.
    """
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    with write_errors_named(path):
        yield from _fill_and_swap(path, tmp)


def _fill_and_swap(path: Path, tmp: Path):
    old = None
    try:
        yield tmp
        public_mode(tmp, folder=True)
        for f in tmp.iterdir():
            public_mode(f, folder=f.is_dir())
        for root, _, files in os.walk(tmp):  # flush file contents before the rename makes them visible
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            old = path.parent / f".old-{path.name}-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():  # the swap itself failed: put the old one back
            os.replace(old, path)
        raise


def build_once(dest: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Create the folder ``dest`` by calling ``build(tmp)`` on an empty temporary sibling, then renaming it.

    When ``dest`` exists it is returned untouched. Processes building the same ``dest`` wait for each other on a
    lock file beside it (``.NAME.lock``, ``filelock``; the OS releases it when a process dies), so one builds
    and the others find it built. When ``build`` raises (or the process is killed), ``dest`` does not exist
    afterwards; temporary folders a killed build left are removed by the next build under the lock.

    Returns:
        ``dest``.
    """
    from filelock import FileLock

    dest = Path(dest)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if dest.is_dir():  # another process built it while this one waited
            return dest
        for stale in dest.parent.glob(f".tmp-{dest.name}-*"):  # no build holds them: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_dir(dest) as tmp:
            build(tmp)
    return dest


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path``'s text in one rename; a full disk or unwritable folder raises PromptFileError naming
    ``path`` and leaves it (and no temporary file) behind."""
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            public_mode(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


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
        data = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{f}: corrupt JSON ({e})") from None
    if not isinstance(data, dict):
        raise PromptFileError(f"{f}: holds a JSON {type(data).__name__}, expected an object")
    return data
