"""The pooling a backbone was trained with, where its checkpoint states one: a backbone quirk, read off the files.

A sentence-transformers checkpoint (all-MiniLM-L6-v2, the built-in ``minilm-l6``) lists its modules in
``modules.json``; its ``sentence_transformers.models.Pooling`` module's ``config.json`` says which pooling its
sentence embeddings were trained with (mean tokens for MiniLM). A classification head on such a backbone
learns with that pooling: on ``minilm-l6`` a first-token ([CLS]) head predicted one class at every learning
rate (bench/results/lr_sweep-minilm.md). Files are read as JSON, never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from softprompt.errors import PromptFileError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ST_POOLING = "sentence_transformers.models.Pooling"
ST_MODES = {
    "pooling_mode_cls_token": "first",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "last",
}
"""sentence-transformers pooling flags softprompt's heads reproduce -> the head's pooling."""


def checkpoint_folder(backbone: PreTrainedModel) -> Path | None:
    """The local folder ``backbone`` was loaded from (``from_pretrained``'s path), None for a model built in
    memory or loaded by hub id."""
    name = getattr(backbone, "name_or_path", None) or getattr(backbone.config, "_name_or_path", "")
    path = Path(str(name)).expanduser() if name else None
    return path if path is not None and path.is_dir() else None


def trained_pooling(folder: str | Path | None) -> tuple[str, Path] | None:
    """(pooling, the config file stating it) for a sentence-transformers checkpoint folder, else None.

    The pooling is "first" (cls token), "mean", "max" or "last" (last token).

    Raises:
        PromptFileError: modules.json or the pooling config is unreadable, or its pooling is not exactly one
            of the accepted modes (naming the file and the accepted ``pooling_mode_*`` flags).
    """
    if folder is None or not (Path(folder) / "modules.json").is_file():
        return None
    modules_file = Path(folder) / "modules.json"
    modules = _read(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise PromptFileError(f"{modules_file}: expected a JSON list of module objects")
    pooling = [m for m in modules if m.get("type") == ST_POOLING]
    if not pooling:
        return None
    config_file = Path(folder) / str(pooling[0].get("path", "")) / "config.json"
    config = _read(config_file)
    if not isinstance(config, dict):
        raise PromptFileError(f"{config_file}: expected a JSON object of pooling_mode_* flags")
    on = [k for k, v in config.items() if k.startswith("pooling_mode") and v is True]
    if len(on) != 1 or on[0] not in ST_MODES:
        accepted = ", ".join(f"{k} ({v})" for k, v in ST_MODES.items())
        raise PromptFileError(
            f"{config_file}: pooling {' + '.join(on) or '(no pooling_mode_* flag true)'} is not accepted; "
            f"exactly one of these must be true: {accepted}; or choose the head yourself (--head first|last|mean|max)"
        )
    return ST_MODES[on[0]], config_file


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise PromptFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise PromptFileError(f"{path}: not valid JSON ({e})") from None
