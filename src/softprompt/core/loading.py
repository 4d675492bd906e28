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

from softprompt.assets import resolve_model
from softprompt.core.model import PromptedModel
from softprompt.core.quantize import (
    keep_4bit_trainable,
    own_float_weights,
    quantization_config,
    quiet_int8_casts,
    use_weight_only_int8,
)
from softprompt.errors import ConfigError, PromptFileError, UnsupportedModel

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


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Accepted backbone dtypes by name (``--dtype`` takes the first three; the short names are aliases)."""
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""Accepted device names."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32" | "bfloat16" | "float16"`` (or the torch dtype itself) -> the torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ConfigError(f"dtype={dtype!r} is not accepted; choose one of: float32, bfloat16, float16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (the GPU when there is one: CUDA, else Apple MPS, else CPU), ``"cpu"``, ``"cuda[:N]"``,
    ``"mps"`` -> a device this machine has; anything else is a ConfigError naming what is accepted."""
    name = str(device).lower()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={device!r} is not accepted; choose one of: {', '.join(DEVICES)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: this machine has no CUDA GPU; use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    if dev.type == "mps" and not mps:
        raise ConfigError(f"device={device!r}: Apple MPS is not available here; use 'cpu' or 'auto'")
    return dev


def load_model(
    name_or_path: str,
    *,
    head: Head = "auto",
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "auto",
    device_map: str | dict | None = None,
    attn_implementation: str | None = None,
    quantize: str | None = None,
) -> PromptedModel:
    """A frozen ``PromptedModel`` with its tokenizer, in eval mode.

    Args:
        name_or_path: a built-in name, a Hugging Face model id or a local folder.
        head: "lm" for a language-model head (causal / masked / seq2seq), "base" for the bare encoder, "auto"
            for the LM head when the checkpoint has one.
        dtype: the backbone's dtype: "float32", "bfloat16", "float16" (or the torch dtype). Prompts keep
            float32 parameters whatever the backbone's dtype and are cast where they enter it.
        device: "auto" (the GPU when there is one), "cpu", "cuda", "cuda:N" or "mps".
        device_map: instead of ``device``, shard the backbone over devices (transformers' ``device_map``:
            "auto" or a module -> device dict; needs accelerate). Prompts follow each layer's device.
        attn_implementation: the attention kernel when no key/value prefix is used (transformers' names,
            e.g. "sdpa", "eager"); see ``PromptedModel`` for how prefix methods use it.
        quantize: load the backbone's linear layers quantized: "int8", "nf4" or "fp4" (bitsandbytes, on the
            CPU or CUDA; see ``softprompt.core.quantize``). Embeddings, the output head and prompts keep
            ``dtype``; prompts trained on a quantized backbone load on the full-precision one and back.
    """
    torch_dtype = resolve_dtype(dtype)
    target = None if device_map is not None else resolve_device(device)
    quantized = None if quantize is None else quantized_load(quantize, torch_dtype, target)
    path = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise PromptFileError(f"cannot load model {name_or_path!r} ({path}): {e}".splitlines()[0]) from None
    cls = _model_class(config, head)
    extra: dict[str, object] = (
        {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    )
    if device_map is not None:
        extra["device_map"] = device_map
    if quantized is not None:  # bitsandbytes places the layers it quantizes: no .to() afterwards
        extra = {"device_map": {"": target}} | extra | quantized
        target = None
    backbone = cls.from_pretrained(path, dtype=torch_dtype, **extra)
    if quantized is not None:
        use_weight_only_int8(backbone)
        keep_4bit_trainable(backbone)
        own_float_weights(backbone)
    if target is not None:
        backbone = backbone.to(target)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return PromptedModel(backbone.eval(), tokenizer=tokenizer)


def quantized_load(scheme: str, dtype: torch.dtype, target: torch.device | None) -> dict:
    """``from_pretrained``'s keywords for a backbone quantized with ``scheme`` (checked with the backend first)."""
    if target is not None and target.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"quantize={scheme!r} runs on the CPU or CUDA, not on {target.type}; use device='cpu'"
        )
    config = quantization_config(scheme, dtype)
    quiet_int8_casts()
    return {"quantization_config": config}
