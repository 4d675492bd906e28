"""Write a prompt as a PEFT prompt-learning folder (``export_peft``); the format is described in ``files.peft``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_file

from softprompt.errors import ConfigError, UnsupportedModel
from softprompt.files.peft import CONFIG, KEY, TASK_TYPES, WEIGHTS, warn_window
from softprompt.io.atomic import atomic_dir
from softprompt.methods import METHODS

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel

DEFAULT_TASK = {
    "causal": "CAUSAL_LM",
    "seq2seq": "SEQ_2_SEQ_LM",
    "masked": "FEATURE_EXTRACTION",
    "encoder": "FEATURE_EXTRACTION",
}
"""The PEFT task type written for each backbone kind when none is given."""


def _peft_config(model, peft_type: str, p: int, task_type: str, base: str) -> dict:
    """An ``adapter_config.json`` PEFT 0.21.2 reads back to exactly the shapes we write."""
    info = model.info
    text = model.backbone.config.get_text_config()
    cfg = {
        "auto_mapping": None,
        "base_model_name_or_path": base or None,
        "inference_mode": True,
        "modules_to_save": None,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": p,
        "peft_type": peft_type,
        "revision": None,
        "task_type": task_type,
    }
    if peft_type == "PREFIX_TUNING":
        token_dim = info.num_kv_heads * info.head_dim  # PEFT's GQA sizing: token_dim = H_kv * D
        cfg.update(
            num_layers=len(info.slots),
            num_attention_heads=info.num_kv_heads,
            token_dim=token_dim,
            encoder_hidden_size=token_dim,
            prefix_projection=False,
            init_weights=None,
        )
    else:
        cfg.update(
            num_layers=info.num_layers,
            token_dim=info.hidden_size,
            num_attention_heads=getattr(text, "num_attention_heads", None),
            prompt_tuning_init="RANDOM",
            prompt_tuning_init_text=None,
            tokenizer_name_or_path=None,
            tokenizer_kwargs=None,
        )
    return dict(sorted(cfg.items()))


def peft_base(model_ref: str | None) -> str | None:
    """A ``base_model_name_or_path`` PEFT's auto classes can load: a built-in name (``smollm2-135m``) as its
    local folder, a local path as an absolute path, anything else (a hub id) unchanged."""
    if not model_ref:
        return None
    from softprompt.assets import MODELS, resolve_model

    if model_ref in MODELS:
        return resolve_model(model_ref)
    local = Path(model_ref).expanduser()
    return str(local.resolve()) if local.exists() else model_ref


def export_peft(
    model: PromptedModel,
    name: str,
    path: str | os.PathLike,
    base_model_name_or_path: str = "",
    *,
    task_type: str | None = None,
) -> Path:
    """Write prompt ``name`` as a folder ``PeftModel.from_pretrained(base, path)`` loads, atomically.

    PEFT stores values, not encoders, so the prompt's ejected form is written: input embeddings (prompt tuning,
    p-tuning) as PROMPT_TUNING, key/value prefixes (prefix tuning, p-tuning v2) as PREFIX_TUNING without
    projection; a method with ``PeftMapping.save_all`` (multitask prompt tuning, adaption prompt) as its own
    type. PEFT always prepends virtual tokens; a template's placement is not part of the file.

    Args:
        model: the ``PromptedModel`` holding the prompt.
        name: prompt name in ``model.bank``.
        path: destination folder (replaced if present).
        base_model_name_or_path: the backbone, recorded for PEFT's ``AutoPeftModel*.from_pretrained(path)``:
            a built-in name is written as its local folder, a local path as an absolute path (``peft_base``).
        task_type: PEFT task type; default from the backbone kind (CAUSAL_LM, SEQ_2_SEQ_LM, FEATURE_EXTRACTION).

    Raises:
        UnsupportedModel: nothing PEFT can hold (hard prompt, embeddings and prefix together, a prefix on an
            encoder-decoder).
    """
    module = model.bank.get(name)
    task_type = _task_type(model, task_type)
    method = METHODS.get(module.config.method)
    if method is not None and method.peft is not None and method.peft.save_all is not None:
        return _export_whole(model, module, method, path, task_type, base_model_name_or_path)
    c = module.eject()
    if (c.embeds is None) == (c.kv is None):
        have = "both input embeddings and a key/value prefix" if c.embeds is not None else "no trained values"
        raise UnsupportedModel(
            f"prompt {name!r} ({module.config.method}) has {have}; PEFT stores exactly one"
        )
    if method is None or method.peft is None:
        raise UnsupportedModel(
            f"prompt {name!r}: method {module.config.method!r} has no PEFT equivalent (its registered "
            "Method has peft=None)"
        )
    if c.kv is not None:
        if model.info.kind == "seq2seq":
            raise UnsupportedModel(
                f"prompt {name!r}: PEFT prefix tuning on encoder-decoders prefixes decoder "
                "self-attention only; softprompt's prefix also covers encoder and cross-attention"
            )
        warn_window(model.info)
        values = c.kv.permute(3, 0, 1, 2, 4).reshape(c.kv.shape[3], -1)  # (S,2,H_kv,P,D) -> (P, S*2*H_kv*D)
        peft_type = "PREFIX_TUNING"
    else:
        assert c.embeds is not None  # (a prompt contributes embeddings when it has no prefix)
        values, peft_type = c.embeds, "PROMPT_TUNING"  # (P, H)
    base = peft_base(base_model_name_or_path) or ""
    cfg = _peft_config(model, peft_type, values.shape[0], task_type, base)
    with atomic_dir(path) as tmp:
        save_file({KEY: values.detach().contiguous().cpu()}, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2))
    return Path(path)


def _task_type(model, task_type: str | None) -> str:
    task_type = task_type or DEFAULT_TASK[model.info.kind]
    if task_type not in TASK_TYPES:
        raise ConfigError(f"task_type={task_type!r}; accepted: {', '.join(TASK_TYPES)}")
    return task_type


def _export_whole(model, module, method, path, task_type: str, base: str) -> Path:
    """A method written as its own PEFT type (``PeftMapping.save_all``), e.g. MULTITASK_PROMPT_TUNING."""
    fields, tensors = method.peft.save_all(module)
    cfg = {"auto_mapping": None, "base_model_name_or_path": peft_base(base) or None, "inference_mode": True,
           "peft_type": method.peft.peft_type, "revision": None, "task_type": task_type} | fields  # fmt: skip
    with atomic_dir(path) as tmp:
        out = {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}
        save_file(out, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(dict(sorted(cfg.items())), indent=2))
    return Path(path)
