"""The only place that knows how per-layer key/value prefixes enter a transformer.

softprompt registers one attention function, ``"softprompt"``, with transformers' ``AttentionInterface``
(plus the matching mask function). A backbone is switched to it for the probe and, for good, once a key/value
prefix is used (``PromptedModel.enable_prefixes``; until then it keeps the implementation it was loaded with,
and implementations outside ``WRAPS`` are never replaced). It wraps PyTorch SDPA and, when the model's forward
received ``softprompt_kv=KVPrefix(...)`` among its keyword arguments (transformers passes those down to every
attention call, checkpointed layers included), prepends the row's prefix keys/values to the layer's
keys/values (cast to their dtype and device) and widens the mask by the prefix width only. With no
``softprompt_kv`` the function *is* SDPA, called with transformers' own mask (None where SDPA's causal kernel
applies); a decode step whose rows all use their whole prefix passes no mask either.

The KV cache is never touched: prefixes are applied at attention time, so the cache only ever holds real tokens
and cache / no-cache paths agree by construction. Nothing here depends on a cache class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from softprompt.core import compat, packed

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from softprompt.core.arch import BackboneInfo
    from softprompt.errors import UnsupportedModel

ATTN_IMPLEMENTATION = "softprompt"
KWARG = "softprompt_kv"
SLOT_ATTR = "_softprompt_slot"


@dataclass
class KVPrefix:
    """Per-row key/value prefixes for every attention slot of a backbone.

    ``kv`` is (S, 2, B, H_kv, P, D): slot s, keys (0) / values (1), row, kv head, prefix position, head dim;
    any dtype and device (float32 parameters): each slot casts it to its own keys' dtype and device, so a
    backbone sharded over devices gets every layer's prefix where that layer runs.
    ``mask`` is (B, P) bool: which prefix positions row b uses (rows may use different lengths, or none).
    ``capture``: when a dict, each slot's own keys/values (before any prefix) are stored there instead.
    """

    kv: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    adapter: torch.Tensor | None = None
    """(S, 2, B, H_kv, P_a, D): keys/values of each slot's gated second attention (``Contribution.adapter``)."""
    adapter_mask: torch.Tensor | None = None
    """(B, P_a) bool: which of them row b uses."""
    capture: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
    probe: list = field(default_factory=list)
    probing: bool = False
    _masks: dict = field(default_factory=dict, repr=False)
    _full: bool | None = field(default=None, repr=False)

    def row_mask(self, device: torch.device) -> torch.Tensor:
        """``mask`` on ``device`` (moved once per device per forward, not once per layer)."""
        assert self.mask is not None  # (asked only of a prefix state, which has one)
        if device not in self._masks:
            self._masks[device] = self.mask.to(device)
        return self._masks[device]

    @property
    def full(self) -> bool:
        """Every row uses every prefix position (then a prefix alone needs no mask column)."""
        if self._full is None:
            assert self.mask is not None  # (asked only of a prefix state, which has one)
            self._full = bool(self.mask.all())
        return self._full


def _base_mask(module, mask, q_len, k_len, batch, device, kwargs) -> torch.Tensor:
    """The bool (B, 1, q, k) mask SDPA would have used, materialized (None means causal or full)."""
    if mask is not None:
        if mask.dtype != torch.bool:
            mask = mask > torch.finfo(mask.dtype).min / 2  # additive float mask -> bool
        return mask.expand(batch, 1, q_len, k_len)
    if q_len > 1 and _causal(module, kwargs):
        i = torch.arange(q_len, device=device)[:, None]
        j = torch.arange(k_len, device=device)[None, :]
        return (j <= i + (k_len - q_len)).expand(batch, 1, q_len, k_len)
    return torch.ones(batch, 1, q_len, k_len, dtype=torch.bool, device=device)


def _causal(module, kwargs) -> bool:
    causal = kwargs.get("is_causal")
    return getattr(module, "is_causal", True) if causal is None else causal


def _with_prefix(module, key, value, mask, state: KVPrefix, slot: int, q_len: int, kwargs):
    """Prepend this slot's prefix to ``key``/``value``; the mask gets P columns in front (only when needed)."""
    assert state.kv is not None  # (attention() calls this for a state with a prefix)
    prefix = state.kv[slot].to(device=key.device, dtype=key.dtype)  # (2, B, H_kv, P, D)
    batch, k_len, width = key.shape[0], key.shape[2], prefix.shape[3]
    if prefix.shape[1] != batch:
        raise RuntimeError(f"prefix batch {prefix.shape[1]} != attention batch {batch}")
    key = torch.cat([prefix[0], key], dim=2)  # (B, H_kv, P + K, D)
    value = torch.cat([prefix[1], value], dim=2)
    bias = kwargs.get("position_bias")
    if bias is not None:  # T5-style relative bias: prefix columns get no bias
        pad = bias.new_zeros(*bias.shape[:-1], width)
        kwargs["position_bias"] = torch.cat([pad, bias], dim=-1)
    # no mask at all: every row uses the whole prefix and each query sees every key (decoding, bidirectional)
    sees_all = mask is None and (q_len == 1 or not _causal(module, kwargs))
    base = (
        None if sees_all and state.full else _base_mask(module, mask, q_len, k_len, batch, key.device, kwargs)
    )
    kwargs["is_causal"] = False  # the prefix shifts the causal diagonal: the mask (or nothing) says it all
    if base is None:
        return key, value, None
    pmask = state.row_mask(key.device)[:, None, None, :].expand(batch, 1, q_len, width)
    return key, value, torch.cat([pmask, base], dim=-1)  # (B, 1, q, P + K)


def _softcapped(module, query, key, value, mask, *, scaling=None, softcap=None, dropout=0.0, **kwargs):
    """Eager attention with logit soft-capping (Gemma 2), which SDPA cannot express."""
    groups = query.shape[1] // key.shape[1]
    key, value = compat.repeat_kv(key, groups), compat.repeat_kv(value, groups)  # (B, H, K, D)
    scores = query @ key.transpose(2, 3) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    scores = torch.tanh(scores / softcap) * softcap
    if mask is None:
        mask = _base_mask(module, None, query.shape[2], key.shape[2], query.shape[0], query.device, kwargs)
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    else:
        scores = scores + mask
    probs = torch.nn.functional.dropout(
        scores.softmax(-1, dtype=torch.float32).to(query.dtype), p=dropout, training=module.training
    )
    return (probs @ value).transpose(1, 2).contiguous(), probs


def attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SDPA, plus the caller's per-row prefix for this module's slot (see module docstring)."""
    state: KVPrefix | packed.Packed | None = kwargs.pop(KWARG, None)
    slot: int | None = getattr(module, SLOT_ATTR, None)
    if isinstance(state, packed.Packed):  # several groups in one forward: each attends on its own rows
        assert slot is not None  # (a packed forward runs on a probed backbone, every attention labelled)
        return packed.attend(state, module, slot, query, key, value, kwargs, attention)
    if state is not None and state.probing:
        state.probe.append((module, tuple(query.shape), tuple(key.shape)))
    elif state is not None and state.capture is not None and slot is not None:
        state.capture[slot] = (key, value)
    elif state is not None and state.kv is not None and slot is not None:
        key, value, attention_mask = _with_prefix(
            module, key, value, attention_mask, state, slot, query.shape[2], kwargs
        )
    adapted = state if state is not None and state.adapter is not None and not state.probing else None
    scaling = kwargs.get("scaling")
    if kwargs.get("softcap") is not None:
        out, weights = _softcapped(module, query, key, value, attention_mask, **kwargs)
    else:
        out, weights = compat.sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if adapted is not None and slot is not None and adapted.capture is None:
        out = out + _adapter_output(query, adapted, slot, scaling)
    return out, weights


def _adapter_output(query, state: KVPrefix, slot: int, scaling) -> torch.Tensor:
    """(B, T, H, D): the slot's gated attention over its adapter keys/values, a softmax of its own
    (LLaMA-Adapter); rows without adapter positions get zeros."""
    adapter, adapter_mask = state.adapter, state.adapter_mask
    assert adapter is not None and adapter_mask is not None  # (the bank sets both for an adaption prompt)
    kv = adapter[slot].to(device=query.device, dtype=query.dtype)  # (2, B, H_kv, P_a, D)
    groups = query.shape[1] // kv.shape[2]
    key, value = compat.repeat_kv(kv[0], groups), compat.repeat_kv(kv[1], groups)  # (B, H, P_a, D)
    scores = query @ key.transpose(2, 3) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    mask = adapter_mask.to(query.device)[:, None, None, :]  # (B, 1, 1, P_a)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1, dtype=torch.float32).to(query.dtype) * mask.any(-1, keepdim=True)
    return (probs @ value).transpose(1, 2)  # (B, T, H, D)


def _fsdp_sharded(backbone: nn.Module) -> bool:
    """Whether FSDP2 (``fully_shard``) manages any of ``backbone``'s modules."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in backbone.modules())


def _as_is(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def _whole_weights(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` on a backbone sharded with FSDP2, outside the layer's own forward (an adaption prompt's
    projection runs before the backbone does). There a frozen layer's weights are shards (DTensors): they are
    all-gathered (every process projects its prompts in the same order, so the collectives match). Where FSDP
    left the layer unsharded (``reshard_after_forward: false``) they are copied instead: FSDP frees that
    storage after the layer's backward, and this projection's backward runs after every layer's. Either way
    the whole weights of the adapted layers' k_proj / v_proj stay alive until backward (frozen: no gradient
    for them, only for the prompt)."""

    def whole(t: torch.Tensor) -> torch.Tensor:
        full = getattr(t, "full_tensor", None)  # a DTensor
        return full() if full is not None else t.detach().clone()

    params = {name: whole(p) for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))


def project_kv(
    backbone: PreTrainedModel, info: BackboneInfo, slot: int, hidden: torch.Tensor
) -> torch.Tensor:
    """(2, H_kv, P, D): attention slot ``slot``'s own keys/values of ``hidden`` (P, H), without positions
    (LLaMA-Adapter's adaption prompt); the slot needs separate ``k_proj`` / ``v_proj`` projections."""
    from softprompt.errors import UnsupportedModel

    module = next((m for m in backbone.modules() if getattr(m, SLOT_ATTR, None) == slot), None)
    k_proj, v_proj = getattr(module, "k_proj", None), getattr(module, "v_proj", None)
    if (
        info.kind != "causal"
        or not isinstance(k_proj, torch.nn.Linear)
        or not isinstance(v_proj, torch.nn.Linear)
    ):
        raise UnsupportedModel(
            f"{info.family}: an adaption prompt projects its prompt through each decoder layer's own k_proj / "
            "v_proj, which this model's attention does not have (supported: decoder-only models with separate "
            "key and value projections, e.g. Llama, Mistral, Qwen2, Gemma)"
        )
    w = k_proj.weight
    # a quantized layer stores int8 / packed weights: it computes in the embeddings' dtype
    dtype = (
        w.dtype
        if w.dtype.is_floating_point
        else cast(nn.Embedding, backbone.get_input_embeddings()).weight.dtype
    )
    x = hidden.to(device=w.device, dtype=dtype)  # (P, H)
    run = _whole_weights if _fsdp_sharded(backbone) else _as_is
    k = run(k_proj, x).view(x.shape[0], info.num_kv_heads, info.head_dim)  # (P, H_kv, D)
    k_norm = getattr(module, "k_norm", None)
    k = run(k_norm, k) if k_norm is not None else k
    v = run(v_proj, x).view(x.shape[0], info.num_kv_heads, info.head_dim)
    return torch.stack([k, v]).transpose(1, 2).float()  # (2, H_kv, P, D)


compat.register_attention(ATTN_IMPLEMENTATION, attention)


WRAPS = frozenset({"sdpa", "eager", ATTN_IMPLEMENTATION})
"""Attention implementations :func:`attention` stands in for exactly (SDPA; eager's math incl. soft-capping).
A model asking for another one (flash_attention_2, flex_attention, ...) keeps it and takes no prefixes."""


def prefix_error(impl: str | None, what: str = "key/value prefixes") -> UnsupportedModel:
    """The error for a prefix on a model whose attention implementation softprompt cannot wrap."""
    from softprompt.errors import UnsupportedModel

    return UnsupportedModel(
        f"{what} need softprompt's attention function (SDPA with per-row prefixes), but this model runs "
        f"attn_implementation={impl!r}, which softprompt cannot wrap; load it with attn_implementation='sdpa' "
        "(or 'eager') to use prefix-tuning / P-tuning v2, or keep to input-embedding methods "
        "(prompt-tuning, p-tuning, hard), which run on any attention implementation"
    )


def install(model: PreTrainedModel) -> None:
    """Route every attention call of ``model`` through :func:`attention`."""
    from softprompt.errors import UnsupportedModel

    if not hasattr(model, "set_attn_implementation"):
        raise UnsupportedModel(
            f"{type(model).__name__} is not a transformers PreTrainedModel; "
            "softprompt wraps models loaded with transformers' from_pretrained/from_config"
        )
    try:
        compat.set_attn_implementation(model, ATTN_IMPLEMENTATION)
    except (ValueError, KeyError) as e:
        raise UnsupportedModel(
            f"{type(model).__name__} cannot use a custom attention function: {e}"
        ) from None
