"""Every private or changing transformers / accelerate API softprompt relies on, in one place.

The next cache or attention API change in transformers is a fix in this file only. Each shim has a test
(tests/core/test_compat.py, one test per shim; the attention path end to end in tests/core/test_attention.py).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from transformers import AttentionInterface, DynamicCache, EncoderDecoderCache
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

if TYPE_CHECKING:
    from transformers import Cache, PreTrainedModel

__all__ = [
    "accepts_kwarg",
    "attn_implementation",
    "cache_kwargs",
    "cache_of",
    "checkpoint_layers",
    "decoder_positions",
    "decoder_positions_unknown",
    "new_cache",
    "register_attention",
    "repeat_kv",
    "reset_accelerate_state",
    "sdpa_attention_forward",
    "seq2seq_cache_from_tensors",
    "seq2seq_cache_tensors",
    "set_attn_implementation",
    "takes_logits_to_keep",
]


def register_attention(name: str, fn: Callable[..., Any]) -> None:
    """Register ``fn`` as attention implementation ``name`` (with SDPA's mask function for it)."""
    AttentionInterface.register(name, fn)
    AttentionMaskInterface.register(name, sdpa_mask)


def set_attn_implementation(model: PreTrainedModel, name: str) -> None:
    """Switch ``model`` (every sub-model) to attention implementation ``name``; ValueError/KeyError if refused."""
    model.set_attn_implementation(name)


def attn_implementation(model: torch.nn.Module) -> str | None:
    """The attention implementation ``model`` runs with (transformers keeps it in a private config field)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def accepts_kwarg(fn: Callable[..., Any], name: str) -> bool:
    """Whether callable ``fn`` takes keyword ``name`` (signatures change between transformers releases)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@functools.cache
def _takes_logits_to_keep(cls: type[torch.nn.Module]) -> bool:
    return accepts_kwarg(cls.forward, "logits_to_keep")


def takes_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the model's forward can compute vocabulary logits at chosen positions only."""
    return _takes_logits_to_keep(type(model))  # type: ignore[arg-type]  # classes are hashable; mypy reads Module.__hash__ as unbound


@functools.cache
def _cache_name(cls: type[torch.nn.Module]) -> str:
    """The cache argument's name in this transformers (``cache`` since 5.24, ``past_key_values`` before)."""
    return "cache" if accepts_kwarg(cls.forward, "cache") else "past_key_values"


def cache_kwargs(model: torch.nn.Module, cache: Cache | None) -> dict[str, Cache | None]:
    """``{name: cache}`` under the name this transformers' forward takes."""
    return {_cache_name(type(model)): cache}  # type: ignore[arg-type]  # (as above)


def cache_of(out: object) -> Cache:
    """The cache a forward run with ``use_cache=True`` returned (``out.cache``, or ``out.past_key_values`` on
    older transformers); UnsupportedModel when it returned none."""
    cache = getattr(out, "cache", None)
    cache = cache if cache is not None else getattr(out, "past_key_values", None)
    if cache is None:
        from softprompt.errors import UnsupportedModel

        raise UnsupportedModel(f"{type(out).__name__} holds no key/value cache although use_cache=True")
    return cache


def new_cache(model: PreTrainedModel, *, seq2seq: bool = False, whole: bool = False) -> Cache:
    """An empty KV cache for ``model`` (encoder-decoder models get one for each side).

    ``whole``: every layer keeps every token, sliding-window layers included (transformers' default trims those
    to the window; the mask applies the window either way). The serving engine merges and trims rows' caches
    by column, which needs every layer's columns to be the same tokens.
    """
    if seq2seq:
        return EncoderDecoderCache(DynamicCache(), DynamicCache())
    return DynamicCache() if whole else DynamicCache(config=model.config)


def reset_accelerate_state(mixed_precision: str) -> None:
    """Forget accelerate's process-wide state when it was set up with another precision (tests, notebooks)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if "_mixed_precision" in state and state["_mixed_precision"] != mixed_precision:
        AcceleratorState._reset_state()


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without any)."""
    p = next(module.parameters(), None)
    return torch.device("cpu") if p is None else p.device


def checkpoint_layers(model: torch.nn.Module) -> bool:
    """Activation-checkpoint every transformers layer of ``model`` whenever autograd is on, in any mode.

    transformers' own checkpointing runs only for layers in training mode, and softprompt keeps the frozen
    backbone in eval mode (its dropout off — some layers, BART's, read ``self.training`` for dropout
    themselves), so each ``GradientCheckpointingLayer``'s forward is wrapped in a non-reentrant
    ``torch.utils.checkpoint`` instead. Returns False when the model has no such layer.
    """
    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        if getattr(layer, "_softprompt_checkpointed", False):
            continue
        inner = layer.forward

        def forward(*args, _inner=inner, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)
            return _inner(*args, **kwargs)

        layer.forward = forward
        layer._softprompt_checkpointed = True  # type: ignore[assignment]  # torch types Module attributes as Tensor | Module
    return bool(layers)


def cache_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (keys, values) of a ``DynamicCache``, (B, H_kv, T, D) each (the serving engine merges them)."""
    # a filled DynamicCache holds DynamicLayers with tensors; transformers annotates `layers` as every layer kind
    return [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[union-attr,misc]


def cache_from_tensors(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A ``DynamicCache`` holding ``layers`` [(keys, values), ...], (B, H_kv, T, D) each."""
    return DynamicCache(ddp_cache_data=layers)


def seq2seq_cache_tensors(
    cache: Cache,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    """An ``EncoderDecoderCache``'s decoder self-attention and cross-attention layers, as ``cache_tensors``."""
    assert isinstance(cache, EncoderDecoderCache)  # what an encoder-decoder's forward returns
    return cache_tensors(cache.self_attention_cache), cache_tensors(cache.cross_attention_cache)


def seq2seq_cache_from_tensors(
    own: list[tuple[torch.Tensor, torch.Tensor]], cross: list[tuple[torch.Tensor, torch.Tensor]]
) -> EncoderDecoderCache:
    """An ``EncoderDecoderCache`` holding decoder self-attention ``own`` and computed cross-attention ``cross``."""
    return EncoderDecoderCache(cache_from_tensors(own), cache_from_tensors(cross))


def _position_table(model: PreTrainedModel) -> torch.nn.Module | None:
    """The decoder's absolute position-embedding module of an encoder-decoder, or None (relative positions)."""
    return getattr(model.get_decoder(), "embed_positions", None)


def decoder_positions_unknown(model: PreTrainedModel) -> str | None:
    """Why rows of different decoder lengths cannot share a step on ``model``, or None when they can.

    transformers numbers decoder positions by cache column. Relative positions (T5's bias, rotary) only see
    distances, which columns keep; a learned or sinusoidal table (BART, mBART, Marian, Pegasus) is looked up
    per row by :func:`decoder_positions`. Any other position module is unknown here.
    """
    table = _position_table(model)
    if table is None or isinstance(table, torch.nn.Embedding):
        return None
    return (
        f"its decoder's position module {type(table).__name__} is not a lookup table softprompt can index "
        "per row, so rows of different lengths cannot share a decoder step"
    )


@contextlib.contextmanager
def decoder_positions(model: PreTrainedModel, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, the decoder's absolute position embeddings are looked up at ``positions`` (B, q).

    transformers looks them up at the cache column, the same for every row; a batch whose rows started at
    different steps (left-padded) needs each row's own. Relative-position decoders need nothing.
    """
    table = _position_table(model)
    if table is None:
        yield
        return
    offset = getattr(table, "offset", 0)  # BART's learned table starts 2 rows in

    def own(module, args, out):
        return torch.nn.functional.embedding(positions.to(module.weight.device) + offset, module.weight)

    handle = table.register_forward_hook(own)
    try:
        yield
    finally:
        handle.remove()
