"""Load a backbone + tokenizer by built-in name, Hugging Face id or local path — one code path for all.

Built-in names (``smollm2-135m``, ``minilm-l6``) resolve to local folders through ``assets``; anything else
goes to ``from_pretrained`` unchanged (a hub id works for users with network access).
"""

from __future__ import annotations

from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
)

from softprompt.core.model import PromptedModel
from softprompt.errors import PromptFileError, UnsupportedModel
from softprompt.files.assets import resolve_model

Head = Literal["auto", "lm", "base"]


def _model_class(config, head: Head):
    if head == "base":
        return AutoModel
    if getattr(config, "is_encoder_decoder", False):
        return AutoModelForSeq2SeqLM
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "CausalLM" in archs or "LMHead" in archs or getattr(config, "is_decoder", False):
        return AutoModelForCausalLM
    if "MaskedLM" in archs or "ForPreTraining" in archs:
        return AutoModelForMaskedLM
    if head == "lm":
        raise UnsupportedModel(
            f"{config.model_type}: the checkpoint has no language-model head "
            f"(architectures: {archs or 'none'}); use head='base' with a task head"
        )
    return AutoModel


def load_model(
    name_or_path: str,
    *,
    head: Head = "auto",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> PromptedModel:
    """A frozen ``PromptedModel`` with its tokenizer.

    Args:
        name_or_path: a built-in name, a Hugging Face model id or a local folder.
        head: "lm" for a language-model head (causal / masked / seq2seq), "base" for the bare encoder, "auto"
            for the LM head when the checkpoint has one.
    """
    path = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise PromptFileError(f"cannot load model {name_or_path!r} ({path}): {e}".splitlines()[0]) from None
    cls = _model_class(config, head)
    backbone = cls.from_pretrained(path, dtype=dtype).to(device).eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return PromptedModel(backbone, tokenizer=tokenizer)
