"""Resumable training checkpoints: safetensors + JSON (never pickle), written atomically, the last two kept.

``<out>/checkpoints/step-<N>/`` holds::

    params.safetensors     prompt and head parameters ("<module>.<param>")
    optimizer.safetensors  AdamW state tensors ("state.<param index>.<key>": exp_avg, exp_avg_sq, step)
    optimizer.json         parameter groups (lr, betas, ...) and any non-tensor state
    scheduler.json         the learning-rate scheduler's state_dict
    rng.safetensors        torch CPU (and CUDA) generator states per process ("<rank>.torch"), uint8
    rng.json               python ``random`` and numpy states per process
    trainer.json           step, epoch, best metrics, patience counter, elapsed time

The folder is built beside its final name and renamed into place (``io.atomic_dir``); only then is the
pointer ``<out>/checkpoints/latest`` (a text file holding the folder name) replaced (``io.atomic_write_text``).
A process killed at any moment therefore leaves ``latest`` naming a complete checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from softprompt.errors import PromptFileError
from softprompt.io.atomic import atomic_dir, atomic_write_text, load_tensors

if TYPE_CHECKING:  # what optimizers and schedulers (accelerate's wrappers included) provide
    from torch.distributed.checkpoint.stateful import Stateful

FORMAT = "softprompt-checkpoint"
VERSION = 1
DIR, LATEST = "checkpoints", "latest"
_STEP = re.compile(r"^step-(\d+)$")


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``restore`` puts it back into modules, optimizer and scheduler."""

    path: Path
    step: int
    params: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rng: list[dict]
    """One entry per process that saved it (rank order)."""
    counters: dict


# ----- RNG --------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    """This process's generator states (torch CPU/CUDA as uint8 tensors, python and numpy as JSON values)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": _jsonable(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],  # type: ignore[index]  # a tuple: numpy annotates dict | tuple
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


# ----- save -------------------------------------------------------------------------------------------------
def latest(out_dir: str | Path) -> Path | None:
    """The checkpoint folder ``latest`` points to, or None when there is none yet."""
    pointer = Path(out_dir) / DIR / LATEST
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    if not _STEP.match(name) or not (pointer.parent / name).is_dir():
        raise PromptFileError(f"{pointer}: points to {name!r}, which is not a checkpoint folder")
    return pointer.parent / name


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    *,
    modules: Mapping[str, nn.Module],
    optimizer: Stateful,
    scheduler: Stateful,
    counters: dict,
    rng: list[dict],
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/step-<step>`` atomically, point ``latest`` at it, keep the last ``keep``."""
    root = Path(out_dir) / DIR
    params = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_meta = {}, []
    for rank, state in enumerate(rng):
        rng_tensors[f"{rank}.torch"] = state["torch"]
        rng_tensors.update({f"{rank}.cuda.{i}": t for i, t in enumerate(state.get("cuda", []))})
        rng_meta.append({"python": state["python"], "numpy": state["numpy"]})
    target = root / f"step-{step}"
    with atomic_dir(target) as tmp:
        _save_tensors(params, tmp / "params.safetensors")
        _save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        _save_tensors(rng_tensors, tmp / "rng.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
        (tmp / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        (tmp / "rng.json").write_text(json.dumps(rng_meta))
        (tmp / "trainer.json").write_text(
            json.dumps({"format": FORMAT, "version": VERSION, "step": step, **counters}, indent=1)
        )
    atomic_write_text(root / LATEST, target.name)
    _prune(root, keep, target.name)
    return target


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _prune(root: Path, keep: int, current: str) -> None:
    """Delete all but the newest ``keep`` step folders, and leftovers of interrupted saves."""
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir())
    for _, path in steps[:-keep]:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for path in root.glob(".old-*"):
        shutil.rmtree(path, ignore_errors=True)


# ----- load -------------------------------------------------------------------------------------------------
_SURPRISES = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RuntimeError)


@contextlib.contextmanager
def named_if_corrupt(path: Path) -> Iterator[None]:
    """A checkpoint file that parses but holds the wrong structure (a ``null`` step, a short RNG state, a
    scheduler state that is a string) raises PromptFileError naming ``path``, not a KeyError from deep inside."""
    try:
        yield
    except _SURPRISES as e:
        raise PromptFileError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e})") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder; a missing, truncated or corrupt file raises PromptFileError naming it."""
    path = Path(path)
    with named_if_corrupt(path):
        return _load_checkpoint(path)


def _load_checkpoint(path: Path) -> Checkpoint:
    counters = _read_json(path / "trainer.json")
    if not isinstance(counters, dict) or counters.get("format") != FORMAT:
        raise PromptFileError(f"{path / 'trainer.json'}: not a {FORMAT} file")
    opt_meta = _read_json(path / "optimizer.json")
    opt_tensors = load_tensors(path / "optimizer.safetensors")
    state: dict[int, dict] = {}
    for key, value in opt_tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in opt_meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = [
        {k: v if k == "params" or not isinstance(v, list) else tuple(v) for k, v in g.items()}
        for g in opt_meta["param_groups"]
    ]
    rng_tensors = load_tensors(path / "rng.safetensors")
    rng = []
    for rank, meta in enumerate(_read_json(path / "rng.json")):
        cuda = sorted(
            (int(k.rsplit(".", 1)[1]), v) for k, v in rng_tensors.items() if k.startswith(f"{rank}.cuda.")
        )
        entry = {"torch": rng_tensors[f"{rank}.torch"], **meta}
        if cuda:
            entry["cuda"] = [v for _, v in cuda]
        rng.append(entry)
    return Checkpoint(
        path=path,
        step=int(counters["step"]),
        params=load_tensors(path / "params.safetensors"),
        optimizer={"state": state, "param_groups": groups},
        scheduler=_read_json(path / "scheduler.json"),
        rng=rng,
        counters=counters,
    )


def restore(
    ckpt: Checkpoint, modules: Mapping[str, nn.Module], optimizer: Stateful, scheduler: Stateful
) -> None:
    """Load a checkpoint's parameters, optimizer and scheduler state in place."""
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix) :]: v for k, v in ckpt.params.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own)
        except RuntimeError as e:
            raise PromptFileError(
                f"{ckpt.path / 'params.safetensors'}: does not match {name} ({str(e).splitlines()[0]})"
            ) from None
    try:
        optimizer.load_state_dict(ckpt.optimizer)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise PromptFileError(f"{ckpt.path / 'optimizer.json'}: does not match the optimizer ({e})") from None
    with named_if_corrupt(ckpt.path / "scheduler.json"):
        scheduler.load_state_dict(ckpt.scheduler)


def _read_json(path: Path):
    if not path.exists():
        raise PromptFileError(f"{path}: missing (incomplete checkpoint)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{path}: corrupt JSON ({e})") from None
