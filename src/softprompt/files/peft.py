"""Read and write PEFT prompt-learning checkpoints (PROMPT_TUNING, P_TUNING, PREFIX_TUNING); peft not needed.

What PEFT 0.21.2 writes (``BasePromptEncoder._get_adapter_state_dict``): one tensor, ``prompt_embeddings``, the
prompt encoder's *output*, never the encoder's weights:

- PROMPT_TUNING: (P * n_sub, H) embeddings; they are the parameters themselves.
- P_TUNING: (P * n_sub, H) output of the LSTM/MLP encoder; the encoder weights are not saved.
- PREFIX_TUNING: (P, L * 2 * H_kv * D) flat prefix; the parameters without ``prefix_projection``, the MLP's
  output with it. PEFT views it as (P, L, 2, H_kv, D), which is our prefix layout. On GQA models PEFT sets
  ``token_dim = H_kv * D`` and ``num_attention_heads = H_kv``.

``n_sub`` (``num_transformer_submodules``) is 2 for SEQ_2_SEQ_LM; PEFT's seq2seq forward then uses only the first P
rows for PROMPT_TUNING / P_TUNING (the encoder's), so we import those. PEFT's seq2seq PREFIX_TUNING reaches
decoder self-attention only (it resets the cross-attention cache and never prefixes the encoder), while our
prefix covers every attention slot: that pairing is refused both ways.

Import keeps trained values trainable where PEFT's tensor is the parameter (PROMPT_TUNING -> ``prompt-tuning``,
PREFIX_TUNING without projection -> ``prefix-tuning`` with ``reparameterize=False``) and loads reparameterized
outputs as the ejected ``static`` form (P_TUNING, PREFIX_TUNING with projection): each method says which in its
registered ``PeftMapping``. Export writes ejected values
(PEFT cannot store an encoder): input embeddings as PROMPT_TUNING, p-tuning included, and key/value prefixes as
PREFIX_TUNING without projection. PEFT's P_TUNING and projected PREFIX_TUNING files read back correctly only into
an inference-mode PEFT model (a training-mode one would pass the values through a fresh random encoder); the
forms we write mean the same thing in either mode.

This module reads (``import_peft``); ``peft_export`` writes (``export_peft``), with the names and checks here.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from softprompt.core.arch import BackboneInfo
from softprompt.errors import BackboneMismatch, PromptFileError, UnsupportedModel
from softprompt.io.atomic import load_tensors, read_json
from softprompt.methods import METHODS, Method, make_config
from softprompt.methods.static import StaticConfig, StaticPrompt

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel

CONFIG, WEIGHTS, PICKLE = "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"
KEY = "prompt_embeddings"
PEFT_TYPES = ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")
"""PEFT's prompt-learning types: the first two hold input embeddings, the last a key/value prefix. Which of our
methods reads each is that method's ``PeftMapping`` (methods/*.py)."""
TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS", "SEQ_2_SEQ_LM", "TOKEN_CLS", "FEATURE_EXTRACTION", "QUESTION_ANS")


# ----- import ------------------------------------------------------------------------------------------------
def read_peft_config(path: str | os.PathLike) -> dict:
    """``adapter_config.json`` of a PEFT folder, checked to be a prompt-learning type softprompt reads."""
    f = Path(path) / CONFIG
    cfg = read_json(f, f"{path}: not a PEFT checkpoint folder (no {CONFIG})")
    kind = cfg.get("peft_type")
    if kind not in read_types():
        raise PromptFileError(
            f"{f}: peft_type={kind!r} is not supported; accepted: {', '.join(read_types())}"
        )
    if kind == "ADAPTION_PROMPT":  # PEFT calls its prompt length adapter_len
        cfg["num_virtual_tokens"] = cfg.get("adapter_len")
    task = cfg.get("task_type")
    if task is not None and task not in TASK_TYPES:
        raise PromptFileError(f"{f}: task_type={task!r} is not supported; accepted: {', '.join(TASK_TYPES)}")
    if not isinstance(cfg.get("num_virtual_tokens"), int) or cfg["num_virtual_tokens"] < 1:
        raise PromptFileError(
            f"{f}: num_virtual_tokens={cfg.get('num_virtual_tokens')!r}; expected an int >= 1"
        )
    return cfg


def read_types() -> tuple[str, ...]:
    """PEFT's prompt-learning types, then any other a registered method reads whole (``PeftMapping.load_all``)."""
    more = [m.peft.peft_type for m in METHODS.values() if m.peft is not None and m.peft.load_all is not None]
    return PEFT_TYPES + tuple(t for t in more if t is not None and t not in PEFT_TYPES)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    f = path / WEIGHTS
    if not f.exists():
        if (path / PICKLE).exists():
            raise PromptFileError(
                f"{path}: only {PICKLE} (a pickle) is present and softprompt never unpickles; convert it to "
                f"{WEIGHTS} (e.g. load it with peft and call save_pretrained(..., safe_serialization=True))"
            )
        raise PromptFileError(f"{path}: no {WEIGHTS}")
    return load_tensors(f)


def _read_values(path: Path) -> torch.Tensor:
    """The ``prompt_embeddings`` tensor (float32); other tensors (task heads) are reported and skipped."""
    f, tensors = path / WEIGHTS, _read_tensors(path)
    if KEY not in tensors:
        raise PromptFileError(f"{f}: no {KEY!r} tensor (holds: {', '.join(sorted(tensors)) or 'nothing'})")
    extra = sorted(set(tensors) - {KEY})
    if extra:
        warnings.warn(
            f"{f}: not imported (task-head weights, not part of the prompt): {', '.join(extra)}", stacklevel=2
        )
    return tensors[KEY].float()


def _mismatch(path, what: str, pairs: list[tuple[str, object, object]]) -> None:
    """Raise BackboneMismatch listing every (field, checkpoint value, model value) that disagrees."""
    bad = [f"{k}: checkpoint {a!r} vs model {b!r}" for k, a, b in pairs if a is not None and a != b]
    if bad:
        raise BackboneMismatch(
            f"{path}: PEFT {what} checkpoint does not fit this backbone; " + "; ".join(bad)
        )


def _input_values(cfg: dict, values: torch.Tensor, info: BackboneInfo, path) -> torch.Tensor:
    """(P, H) virtual-token embeddings of a PROMPT_TUNING / P_TUNING checkpoint."""
    p, n_sub = cfg["num_virtual_tokens"], cfg.get("num_transformer_submodules") or 1
    if n_sub != 1 and not (n_sub == 2 and cfg.get("task_type") == "SEQ_2_SEQ_LM"):
        raise PromptFileError(
            f"{path}: num_transformer_submodules={n_sub} with task_type="
            f"{cfg.get('task_type')!r}; PEFT only uses 2 for SEQ_2_SEQ_LM"
        )
    _mismatch(path, cfg["peft_type"], [("token_dim (hidden size)", cfg.get("token_dim"), info.hidden_size)])
    if tuple(values.shape) != (p * n_sub, info.hidden_size):
        raise BackboneMismatch(
            f"{path}: {KEY} has shape {tuple(values.shape)}; this backbone needs "
            f"({p * n_sub}, {info.hidden_size}) (num_virtual_tokens x submodules, hidden size)"
        )
    return values[:p]  # (P, H) seq2seq: PEFT feeds only the first P rows (the encoder's)


def _prefix_values(cfg: dict, values: torch.Tensor, info: BackboneInfo, path) -> torch.Tensor:
    """(P, S * 2 * H_kv * D) flat prefix of a PREFIX_TUNING checkpoint."""
    if info.kind == "seq2seq":
        raise UnsupportedModel(
            f"{path}: PEFT prefix tuning on encoder-decoders prefixes decoder self-attention "
            "only; softprompt's prefix covers encoder, decoder and cross-attention"
        )
    if (cfg.get("num_transformer_submodules") or 1) != 1:
        raise PromptFileError(
            f"{path}: PREFIX_TUNING with num_transformer_submodules="
            f"{cfg['num_transformer_submodules']}; only 1 fits a decoder-only or encoder model"
        )
    heads, dim = cfg.get("num_attention_heads"), cfg.get("token_dim")
    _mismatch(
        path,
        "PREFIX_TUNING",
        [
            ("num_layers", cfg.get("num_layers"), len(info.slots)),
            ("num_attention_heads (kv heads)", heads, info.num_kv_heads),
            ("token_dim (kv heads x head dim)", dim, info.num_kv_heads * info.head_dim),
        ],
    )
    width = len(info.slots) * 2 * info.num_kv_heads * info.head_dim
    if tuple(values.shape) != (cfg["num_virtual_tokens"], width):
        raise BackboneMismatch(
            f"{path}: {KEY} has shape {tuple(values.shape)}; this backbone needs "
            f"({cfg['num_virtual_tokens']}, {width}) (num_virtual_tokens, layers x 2 x kv heads "
            f"x head dim)"
        )
    return values


def warn_window(info: BackboneInfo) -> None:
    """Warn that on a sliding-window model PEFT's prefix and ours agree only within the window."""
    if info.sliding_window is not None:
        warnings.warn(
            f"{info.family} uses a {info.sliding_window}-token sliding window: PEFT's prefix (cached as "
            "the first P positions) drops out of it for later tokens, softprompt's stays visible; "
            "outputs agree only while prefix + sequence length <= the window",
            stacklevel=2,
        )


def _safe_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", path.resolve().name)[:128] or "peft"


def import_peft(model: PromptedModel, path: str | os.PathLike, name: str | None = None) -> str:
    """Load a PEFT prompt-learning checkpoint folder into ``model.bank``; returns the prompt's name.

    Args:
        model: the ``PromptedModel`` whose backbone the checkpoint was trained on.
        path: folder holding ``adapter_config.json`` and ``adapter_model.safetensors`` (pickles are refused).
        name: bank name; default: the folder's name.

    Raises:
        PromptFileError: missing/corrupt files, a ``.bin`` only, or an unsupported peft_type / task_type.
        BackboneMismatch: the checkpoint's dimensions disagree with ``model.info``.
        UnsupportedModel: PREFIX_TUNING on an encoder-decoder (PEFT's layout differs from ours).
    """
    path = Path(path)
    cfg = read_peft_config(path)
    method = reader_of(cfg["peft_type"], path)
    mapping = method.peft
    assert mapping is not None  # reader_of returns a method with a PEFT mapping
    if mapping.load_all is not None:
        return _import_whole(model, path, cfg, method, name)
    values = _read_values(path)
    info, p, kind = model.info, cfg["num_virtual_tokens"], cfg["peft_type"]
    task = cfg.get("task_type")
    if task is not None and (task == "SEQ_2_SEQ_LM") != (info.kind == "seq2seq"):
        raise BackboneMismatch(f"{path}: task_type {task!r} checkpoint vs a {info.kind} {info.family} model")
    name = name or _safe_name(path)
    if kind == "PREFIX_TUNING":
        values = _prefix_values(cfg, values, info, path)  # (P, S*2*H_kv*D)
        warn_window(info)
    else:
        values = _input_values(cfg, values, info, path)  # (P, H)
    fields = mapping.fields(cfg)
    if fields is None or mapping.load is None:  # an encoder's output (not saved): the ejected form
        if kind == "PREFIX_TUNING":
            kv = values.view(p, len(info.slots), 2, info.num_kv_heads, info.head_dim).permute(1, 2, 3, 0, 4)
            return _add_static(model, name, p, method.name, kv=kv)  # (S, 2, H_kv, P, D)
        return _add_static(model, name, p, method.name, embeds=values)
    module = model.add_prompt(name, make_config(method.name, num_virtual_tokens=p, **fields))
    with torch.no_grad():
        mapping.load(module, values)
    return name


def _import_whole(model, path: Path, cfg: dict, method: Method, name: str | None) -> str:
    """A PEFT type the method reads itself (every tensor by PEFT's name, e.g. MULTITASK_PROMPT_TUNING)."""
    _mismatch(
        path, cfg["peft_type"], [("token_dim (hidden size)", cfg.get("token_dim"), model.info.hidden_size)]
    )
    if (cfg.get("num_transformer_submodules") or 1) != 1:
        raise UnsupportedModel(f"{path}: {cfg['peft_type']} with num_transformer_submodules != 1 is not read")
    tensors = {k: v.float() for k, v in _read_tensors(path).items()}
    load_all = method.peft.load_all if method.peft is not None else None
    assert method.peft is not None and load_all is not None  # (import_peft sends only such methods here)
    fields = method.peft.fields(cfg) or {}
    name = name or _safe_name(path)
    module = model.add_prompt(
        name, make_config(method.name, num_virtual_tokens=cfg["num_virtual_tokens"], **fields)
    )
    try:
        with torch.no_grad():
            load_all(module, tensors)
    except Exception:
        model.bank.remove(name)
        raise
    return name


def reader_of(peft_type: str, path: str | os.PathLike) -> Method:
    """The registered method whose PEFT mapping reads ``peft_type`` files."""
    for method in METHODS.values():
        if method.peft is not None and method.peft.peft_type == peft_type:
            return method
    raise PromptFileError(f"{path}: no registered method reads PEFT's {peft_type} (see softprompt methods)")


def _add_static(model, name: str, p: int, source: str, **tensors) -> str:
    module = StaticPrompt.from_tensors(tensors, StaticConfig(num_virtual_tokens=p, source_method=source))
    model.put_prompt(name, module)  # on the model's device, in its mode (eval for use)
    return name
