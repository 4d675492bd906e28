"""Quantized frozen backbones: ``load_model(..., quantize="int8" | "nf4" | "fp4")`` through bitsandbytes.

Only the backbone's linear layers are quantized (transformers' bitsandbytes integration): the input
embeddings, the output head (tied to them in most decoders) and every prompt keep the dtype they load in, so
a prompt's backbone fingerprint is the same on a quantized and a full-precision copy of one checkpoint, and a
prompt trained on either loads on the other. Prompts stay float32 parameters; gradients reach them through
the quantized layers (bitsandbytes' matmuls are differentiable with respect to their inputs).

bitsandbytes (>= 0.48) runs on the CPU as well as on CUDA; it is the ``quantize`` extra:
``pip install 'softprompt[quantize]'``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import types
from typing import TYPE_CHECKING

from softprompt.errors import ConfigError

if TYPE_CHECKING:  # imported lazily: the CLI reads SCHEMES for --quantize's choices before torch loads
    import torch
    from torch import nn
    from transformers import BitsAndBytesConfig

SCHEMES: dict[str, str] = {
    "int8": "LLM.int8(): 8-bit integer weights, one scale per output row (bitsandbytes Linear8bitLt)",
    "nf4": "4-bit NormalFloat weights in blocks of 64 (QLoRA's format, bitsandbytes Linear4bit)",
    "fp4": "4-bit float weights in blocks of 64 (bitsandbytes Linear4bit)",
}
"""Accepted ``quantize`` values and what each stores."""
BACKEND = "bitsandbytes"
MIN_VERSION = (0, 48)
"""The first bitsandbytes with a CPU backend and 8-bit models that move across devices."""
INSTALL = "pip install 'softprompt[quantize]' (or: pip install 'bitsandbytes>=0.48')"


def check_scheme(scheme: str) -> str:
    """``scheme`` lower-cased when it is one of ``SCHEMES``.

    Raises:
        ConfigError: naming the value and the accepted schemes.
    """
    name = scheme.lower() if isinstance(scheme, str) else scheme
    if name not in SCHEMES:
        raise ConfigError(f"quantize={scheme!r} is not accepted; choose one of: {', '.join(SCHEMES)}")
    return name


def check_backend() -> None:
    """Raise ConfigError naming how to install bitsandbytes when it is missing or too old for the CPU."""
    try:
        version = importlib.metadata.version(BACKEND)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"quantize needs {BACKEND}, which is not installed; {INSTALL}") from None
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_VERSION:
        raise ConfigError(f"quantize needs {BACKEND} >= 0.48 (installed: {version}); {INSTALL}")


def quantization_config(scheme: str, compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """transformers' ``BitsAndBytesConfig`` for ``scheme``; 4-bit layers compute in ``compute_dtype``."""
    from transformers import BitsAndBytesConfig

    scheme = check_scheme(scheme)
    check_backend()
    if scheme == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=scheme, bnb_4bit_compute_dtype=compute_dtype
    )


def quiet_int8_casts() -> None:
    """bitsandbytes' LLM.int8() matmul (CUDA) logs on every call that float32 inputs are cast to float16 for
    quantizing them; that is how it works (outputs come back in the input's dtype), so the note is silenced."""
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)


def _dequantize(cb: torch.Tensor, scb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int8 rows ``cb`` times their absmax ``scb`` / 127, in ``dtype`` (bitsandbytes' own dequantization)."""
    return cb.to(dtype).mul_(scb.unsqueeze(1).mul(1.0 / 127.0))  # (out, in)


BF16_MATMUL_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")
"""``torch.cpu.get_capabilities()`` keys of CPU instructions that multiply bfloat16 natively (x86: AVX-512 BF16,
AMX-BF16; ARM: BF16, SVE BF16). Without one, PyTorch's CPU bfloat16 matmul is far slower than float32's
(measured on an AMD EPYC with AVX2 only, [512x576] @ [576x1536]: 135.7 ms against 15.9 ms, one thread)."""


@functools.cache
def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bfloat16 matmul instructions (one of ``BF16_MATMUL_FEATURES``)."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.9
    if capabilities is not None:
        found = capabilities()
        return any(bool(found.get(name, False)) for name in BF16_MATMUL_FEATURES)
    checks = [getattr(torch.cpu, f"_is_{name}_supported", None) for name in ("avx512_bf16", "amx_tile")]
    return any(check() for check in checks if check is not None)


def matmul_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype an int8 layer multiplies in, for inputs of ``dtype`` on ``device``: the input's own, except
    bfloat16 on a CPU without bfloat16 matmul instructions, which multiplies in float32 (the layer still
    returns bfloat16, so the activations kept between layers stay bfloat16)."""
    import torch

    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_multiplies_bf16():
        return torch.float32
    return dtype


@functools.cache
def _weight_only_int8() -> type[torch.autograd.Function]:
    """The autograd function (built on first use: this module is imported before torch by the CLI)."""
    import torch

    class WeightOnlyInt8(torch.autograd.Function):
        """``x @ W.T + b`` with W dequantized from int8 in forward and again in backward: only the int8 weight
        is kept for backward (bitsandbytes' ``MatMul8bitFp`` also keeps ``x``, for a weight gradient a frozen
        backbone never needs). Both matmuls run in :func:`matmul_dtype` and return the input's dtype."""

        @staticmethod
        def forward(ctx, x, cb, scb, bias):
            ctx.save_for_backward(cb, scb)
            ctx.compute = matmul_dtype(x.dtype, x.device)
            b = None if bias is None else bias.to(ctx.compute)
            w = _dequantize(cb, scb, ctx.compute)  # (out, in)
            return torch.nn.functional.linear(x.to(ctx.compute), w, b).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            cb, scb = ctx.saved_tensors
            grad_bias = grad.flatten(0, -2).sum(0) if ctx.needs_input_grad[3] else None
            w = _dequantize(cb, scb, ctx.compute)
            return torch.matmul(grad.to(ctx.compute), w).to(grad.dtype), None, None, grad_bias

    return WeightOnlyInt8


def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``forward`` of a bitsandbytes int8 layer, weight-only (see :func:`use_weight_only_int8`)."""
    if self.weight.CB is not None:  # bitsandbytes moves the row scales into the layer's state on first use
        self.init_8bit_state()
    bias = None if self.bias is None else self.bias.to(x.dtype)
    return _weight_only_int8().apply(x, self.weight.data, self.state.SCB, bias)


def use_weight_only_int8(backbone: nn.Module) -> int:
    """Make every bitsandbytes int8 layer compute weight-only: its int8 weights dequantized one layer at a time
    (as bitsandbytes does on the CPU while fine-tuning), then a float matmul in the input's dtype (float32 for
    bfloat16 inputs on a CPU without bfloat16 matmul instructions: :func:`matmul_dtype`).

    bitsandbytes' inference path, LLM.int8(), quantizes the inputs too and chooses its outlier columns over the
    whole batch, so a row's scores depend on the rows and padding beside it (measured on SmolLM2-135M: 2.2 in a
    label logit); weight-only, a mixed batch equals each row alone. Returns how many layers were switched.
    """
    from bitsandbytes.nn import Linear8bitLt

    layers = [m for m in backbone.modules() if isinstance(m, Linear8bitLt)]
    for m in layers:
        m.forward = types.MethodType(_int8_forward, m)  # type: ignore[method-assign]  # this layer alone, on purpose
    return len(layers)


def keep_4bit_trainable(backbone: nn.Module) -> int:
    """Make every bitsandbytes 4-bit layer compute one way, in training and in inference, on every CPU.

    On a CPU with AVX-512 BF16, bitsandbytes (0.50) repacks a 4-bit layer's weights in place on its first
    forward in eval mode without gradients, into a layout whose matmul has no backward: every later training
    forward through the layer gives the prompt a zero gradient, silently (measured on SmolLM2-135M nf4, Intel
    Xeon with AVX-512 BF16: prompt gradient norm 0.0 after ``load_model``), and the repacking fails on layers
    whose input width is not a multiple of the block size (64). The repacking is switched off (and undone
    where it already ran); the packed kernel saved nothing measurable here (no-grad forward, batch 8 x 64
    tokens: 962-1024 ms packed against 1027-1035 ms). Returns how many layers were switched.
    """
    from bitsandbytes.nn import Linear4bit

    layers = [m for m in backbone.modules() if isinstance(m, Linear4bit)]
    for m in layers:
        m.support_avx512bf16_for_cpu = False  # read by Linear4bit.forward (bitsandbytes 0.50)
        state = getattr(m.weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse as unpack

            m.weight.data, m.weight.quant_state = unpack(m.weight.data, state)  # type: ignore[attr-defined]
    return len(layers)


def own_float_weights(backbone: nn.Module) -> None:
    """Copy the parameters left in float (embeddings, head, norms) out of the checkpoint file's memory map.

    Loading maps the safetensors file and a float parameter stays a view of it, which keeps the whole file
    mapped: the float32 pages of the layers that were quantized stayed resident beside their int8 copies
    (measured on SmolLM2-135M: 630 MiB of file pages in the RSS after an int8 load, 117 MiB after this copy,
    98 MiB before loading).
    """
    import torch

    seen: set[int] = set()
    with torch.no_grad():
        for p in backbone.parameters():
            if p.is_floating_point() and id(p) not in seen:
                seen.add(id(p))
                p.data = p.data.clone()


def quantized_scheme(backbone: nn.Module) -> str | None:
    """The scheme a loaded backbone's linear layers are quantized with, None when they are not."""
    config = getattr(backbone, "quantization_config", None) or getattr(
        getattr(backbone, "config", None), "quantization_config", None
    )
    if config is None:
        return None
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    if get("load_in_8bit", False):
        return "int8"
    if get("load_in_4bit", False):
        return str(get("bnb_4bit_quant_type", "fp4"))
    return str(get("quant_method", "quantized"))
