"""How a command loads its backbone: ``--device`` / ``--dtype`` / ``--quantize`` (one helper for all), ``load_backbone`` with its
error messages, and ``load_trained`` (the library's, with the backbone loaded this way)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softprompt.core.quantize import SCHEMES
from softprompt.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from softprompt.core.model import PromptedModel
    from softprompt.tasks.base import Task
    from softprompt.tasks.trained import Trained

DTYPES = ("float32", "bfloat16", "float16")
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def add_model_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``, ``--dtype`` and ``--quantize``, for every command that loads a model."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=f"where the backbone runs: {DEVICE_FORMS}; auto takes the GPU when there is one (default: auto)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=DTYPES,
        help="the backbone's weights (prompts keep float32 parameters) (default: float32)",
    )
    add_quantize_flag(parser)


def add_quantize_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--quantize``: the frozen backbone's linear layers quantized through bitsandbytes (CPU or CUDA)."""
    parser.add_argument(
        "--quantize",
        default=None,
        choices=tuple(SCHEMES),
        help="load the backbone's linear layers quantized (bitsandbytes; embeddings, head and prompts keep "
        "--dtype; a prompt trained either way loads on the other) (default: off)",
    )


def resolve_device(value: str) -> torch.device:
    """``--device``'s value as a ``torch.device``; ``auto``: CUDA, else MPS, else the CPU.

    Raises:
        ConfigError: a malformed value, or a device this machine does not have.
    """
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    m = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", value or "")
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"--device={value!r} is not accepted; choose one of: {DEVICE_FORMS}")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device={value!r}: this machine has no CUDA GPU; use --device cpu (or auto)")
        if index is not None and int(index) >= count:
            raise ConfigError(
                f"--device={value!r}: this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}"
            )
    if kind == "mps" and not has_mps:
        raise ConfigError(
            f"--device={value!r}: MPS (Apple GPU) is not available here; use --device cpu (or auto)"
        )
    return torch.device(value)


def check_train_device(value: str) -> None:
    """Training places the model with Accelerate (a GPU when there is one): refuse a ``--device`` it won't use.

    Raises:
        ConfigError: naming the device Accelerate uses here and how to train elsewhere.
    """
    import os

    import torch

    target = resolve_device(value)
    if value == "auto":
        return
    gpu = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true")
    used = "cuda" if gpu else "cpu"
    if target.type != used or (target.index or 0) != 0:
        raise ConfigError(
            f"--device={value!r}: training runs where Accelerate places it, {used} on this machine; use "
            "--device auto, CUDA_VISIBLE_DEVICES=N to pick a GPU, or `accelerate launch --cpu` for the CPU"
        )


def resolve_dtype(value: str) -> torch.dtype:
    """``--dtype``'s value as a ``torch.dtype``."""
    import torch

    if value not in DTYPES:
        raise ConfigError(f"--dtype={value!r} is not accepted; choose one of: {', '.join(DTYPES)}")
    return getattr(torch, value)


def load_backbone(
    name: str, *, device: str = "auto", dtype: str = "float32", quantize: str | None = None
) -> PromptedModel:
    """``load_model(name)`` in ``dtype`` on ``device``, ``quantize``d (``--device`` / ``--dtype`` / ``--quantize``)."""
    from transformers.utils import logging

    from softprompt.assets import MODELS
    from softprompt.core.loading import load_model
    from softprompt.core.quantize import check_backend, check_scheme
    from softprompt.errors import PromptFileError

    target, torch_dtype = resolve_device(device), resolve_dtype(dtype)  # bad values fail before loading
    if quantize is not None:
        check_scheme(quantize)
        check_backend()
    path = Path(name).expanduser()
    if name not in MODELS:
        _check_model_folder(name, path)
    logging.disable_progress_bar()  # no "Loading weights" bars on stderr
    try:
        return load_model(name, dtype=torch_dtype, device=target, quantize=quantize)
    except PromptFileError as e:
        if name in MODELS or path.exists():
            raise
        raise PromptFileError(
            f"{e} (built-in models: {', '.join(MODELS)}; or a local folder, or a hub id when online)"
        ) from None


def _check_model_folder(name: str, path: Path) -> None:
    """A local model must be a folder with config.json; a path-like name that does not exist is named."""
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path and not path.exists():
        raise ConfigError(f"model folder {name} does not exist")
    if path.exists() and not (path / "config.json").is_file():
        raise ConfigError(f"model folder {name} has no config.json; give a folder written by save_pretrained")


def model_flags(args: argparse.Namespace) -> dict:
    """``device=``, ``dtype=`` and ``quantize=`` from parsed ``--device`` / ``--dtype`` / ``--quantize``
    (defaults when a command lacks them)."""
    return {
        "device": getattr(args, "device", "auto"),
        "dtype": getattr(args, "dtype", "float32"),
        "quantize": getattr(args, "quantize", None),
    }


def load_trained(
    path: str,
    model_name: str | None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str | None = None,
    **task: Any,
) -> Trained:
    """(model, prompt name, metadata, task) for a saved prompt; ``task``: the keywords of ``read_trained``.

    The folder is read and checked before the model loads, so a broken prompt.json fails fast.
    """
    from softprompt.tasks.trained import load_trained as load
    from softprompt.tasks.trained import read_trained

    plan = read_trained(path, **task)
    model_name = model_name or plan.model_name
    if not model_name:
        raise ConfigError(f"{plan.folder} does not record its model; pass --model")
    return load(plan, load_backbone(model_name, device=device, dtype=dtype, quantize=quantize))


def load_ensemble(
    paths: list[str],
    model_name: str | None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str | None = None,
    **task: Any,
) -> tuple[PromptedModel, list[tuple[str, Task]], list[dict]]:
    """(model, [(name, task)], [meta]) for several saved prompts on one backbone (the first one's, or
    ``model_name``): a prompt ensemble. Every folder is read and checked before the model loads; a name that two
    prompts share is made distinct (``name-2``)."""
    from softprompt.tasks.trained import load_trained as load
    from softprompt.tasks.trained import read_trained

    plans = [read_trained(p, **task) for p in paths]
    model_name = model_name or plans[0].model_name
    if not model_name:
        raise ConfigError(f"{plans[0].folder} does not record its model; pass --model")
    model = load_backbone(model_name, device=device, dtype=dtype, quantize=quantize)
    members: list[tuple[str, Task]] = []
    metas: list[dict] = []
    for i, plan in enumerate(plans, 1):
        name = plan.meta.get("name") or plan.folder.name
        name = name if name not in model.bank else f"{name}-{i}"
        trained = load(plan, model, name=name)
        if trained.task is None:
            raise ConfigError(f"{plan.folder}: a prompt ensemble needs each prompt's task; pass --labels")
        members.append((trained.name, trained.task))
        metas.append(trained.meta)
    return model, members, metas
