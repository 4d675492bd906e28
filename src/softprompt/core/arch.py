"""What softprompt needs to know about a backbone, derived from the loaded model, never stored by users.

A probe forward (a few tokens) through the ``softprompt`` attention function lists every attention module in
call order with its query/key shapes; from that we derive each slot's role (self / encoder / decoder / cross),
its key/value heads and head dim. Model quirks (RoPE vs learned positions, RoBERTa's position offset, whether
``position_ids`` are accepted) are read off the model here, so ``forward`` never asks which family it runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import torch
from torch import nn

from softprompt.core import compat, kv
from softprompt.errors import UnsupportedModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Kind = Literal["causal", "masked", "seq2seq", "encoder"]
DESCRIPTIVE = frozenset({"context_length"})
"""BackboneInfo fields that describe the model without identifying it (not compared when a prompt loads)."""
Role = Literal["self", "encoder", "decoder", "cross"]


@dataclass(frozen=True)
class Slot:
    """One attention module that can take a key/value prefix."""

    role: Role
    layer: int


@dataclass(frozen=True)
class BackboneInfo:
    """Dimensions and conventions of a backbone; recorded in every prompt file (its ``backbone`` key).

    Derived from the loaded model by :func:`describe_backbone`, never written by users. A prompt file is
    accepted by a model whose description matches it in every field except the descriptive ones
    (``DESCRIPTIVE``); the fingerprint matches across dtypes. Fields added later have defaults, so older files
    (without them) still load.
    """

    family: str
    """transformers' ``model_type`` ("llama", "bert", "t5", ...)."""
    kind: Kind
    """causal (decoder LM), masked (encoder with an MLM head), seq2seq (encoder-decoder) or encoder (no head)."""
    hidden_size: int
    """Width of the input embeddings (and of every virtual input token)."""
    vocab_size: int
    """Rows of the input-embedding matrix."""
    num_kv_heads: int
    """Key/value heads per attention layer (fewer than query heads under grouped-query attention)."""
    head_dim: int
    """Width of one key/value head."""
    slots: tuple[Slot, ...]
    """Every attention module that takes a key/value prefix, in call order (role + layer index)."""
    max_positions: int | None
    """Learned position embeddings' limit (None for RoPE / relative positions): the input-embedding check."""
    position_base: int
    """First position id (RoBERTa counts from padding_idx + 1; others from 0)."""
    accepts_position_ids: bool
    """Whether the forward takes ``position_ids`` (then virtual tokens get per-row positions)."""
    sliding_window: int | None
    """Sliding-window attention width (Mistral, Gemma 2), None without one."""
    fingerprint: str
    """Identifies the input-embedding weights in any dtype (see :func:`embedding_fingerprint`)."""
    context_length: int | None = None
    """Most positions the backbone handles: learned positions' limit, else the config's
    ``max_position_embeddings`` (RoPE models) or similar; None when the model states none. Descriptive: not
    compared on load (absent from files written before it existed)."""
    legacy_fingerprint: str | None = field(default=None, compare=False, repr=False)
    """The pre-``fp2`` fingerprint of the same weights, to accept older files; never saved."""

    @property
    def num_layers(self) -> int:
        return sum(1 for s in self.slots if s.role in ("self", "encoder"))

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("legacy_fingerprint")
        d["slots"] = [[s.role, s.layer] for s in self.slots]
        return d

    @staticmethod
    def from_json(d: dict) -> BackboneInfo:
        d = dict(d)
        d["slots"] = tuple(Slot(role=r, layer=l) for r, l in d["slots"])
        return BackboneInfo(**d)

    def mismatch(self, other: BackboneInfo) -> list[str]:
        """Names of the fields that differ (slots and fingerprint included; descriptive fields excluded).

        ``self`` is the saved description, ``other`` the loaded model's; fingerprints match across dtypes.
        """
        a, b = self.to_json(), other.to_json()
        out = [k for k in a if k not in DESCRIPTIVE and k != "fingerprint" and a[k] != b.get(k)]
        return out if fingerprints_match(self.fingerprint, other) else [*out, "fingerprint"]


FINGERPRINT_CHUNKS = 16
FINGERPRINT_TOLERANCE = 50
"""Chunk means may differ by this many 1e-4 units of the sample's RMS and still name the same weights: a
float16 / bfloat16 copy moves them by ~1e-4 RMS at most, other weights by ~600 (one standard deviation)."""


def input_embeddings(model: PreTrainedModel) -> nn.Embedding:
    """``model.get_input_embeddings()``, typed: an ``nn.Embedding`` (or a subclass) in every transformers model."""
    return cast(nn.Embedding, model.get_input_embeddings())


def _sample(w: torch.Tensor) -> torch.Tensor:
    """A strided sample of ~4096 values of ``w``, in float64 on the CPU."""
    return w.detach().flatten()[:: max(1, w.numel() // 4096)][:4096].double().cpu()


def embedding_fingerprint(model: PreTrainedModel) -> str:
    """Identifies the input-embedding matrix in any dtype: ``fp2:<shape hash>:<RMS>:<chunk means>``.

    Exact hashes cannot do that: rounding float32 weights to bfloat16 and float16 weights to bfloat16 differ
    in ~6 % of values (double rounding), so any hash of rounded values tells a float16 copy from its float32
    original. Instead the fingerprint holds the sample's RMS and the means of 16 chunks of it, in units of
    1e-4 RMS; :func:`fingerprints_match` compares them with a tolerance (``FINGERPRINT_TOLERANCE``).
    """
    w = input_embeddings(model).weight
    x = _sample(w)
    shape = hashlib.sha256(str(tuple(w.shape)).encode()).hexdigest()[:8]
    rms = float(x.square().mean().sqrt()) or 1.0
    means = [round(float(c.mean()) / rms * 1e4) for c in x.chunk(FINGERPRINT_CHUNKS)]
    return f"fp2:{shape}:{rms:.4e}:{','.join(map(str, means))}"


def legacy_fingerprint(model: PreTrainedModel) -> str:
    """The fingerprint of prompt files written before ``fp2`` (float32 values rounded to 5 decimals, hashed)."""
    w = input_embeddings(model).weight.detach()
    sample = w.flatten()[:: max(1, w.numel() // 4096)].float().cpu()
    h = hashlib.sha256(str(tuple(w.shape)).encode())
    h.update(sample.numpy().round(5).tobytes())
    return h.hexdigest()[:16]


def fingerprints_match(saved: str, info: BackboneInfo) -> bool:
    """Whether fingerprint ``saved`` (from a prompt file) names the weights ``info`` describes."""
    if not saved.startswith("fp2:"):  # an older file: exact hash of float32 values
        return saved in (info.fingerprint, info.legacy_fingerprint)
    try:
        _, shape, rms, means = saved.split(":")
        _, shape2, rms2, means2 = info.fingerprint.split(":")
        a, b = [int(v) for v in means.split(",")], [int(v) for v in means2.split(",")]
        rms_a, rms_b = float(rms), float(rms2)
    except ValueError:
        return False
    return (
        shape == shape2
        and len(a) == len(b)
        and abs(rms_a - rms_b) <= 1e-2 * max(rms_a, rms_b)
        and all(abs(x - y) <= FINGERPRINT_TOLERANCE for x, y in zip(a, b))
    )


def _kind(model, causal_attention: bool) -> Kind:
    if getattr(model.config, "is_encoder_decoder", False):
        return "seq2seq"
    if causal_attention:
        return "causal"
    return "masked" if model.get_output_embeddings() is not None else "encoder"


def _probe(model, seq2seq: bool) -> list:
    state = kv.KVPrefix(probing=True)
    dev = input_embeddings(model).weight.device
    ids = torch.full((1, 3), 1, dtype=torch.long, device=dev)
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), kv.KWARG: state}
    if seq2seq:
        kwargs["decoder_input_ids"] = torch.full((1, 2), 1, dtype=torch.long, device=dev)
    with torch.no_grad():
        model(**kwargs, use_cache=False) if seq2seq or _takes(model, "use_cache") else model(**kwargs)
    return state.probe


def _takes(model, arg: str) -> bool:
    return compat.accepts_kwarg(model.forward, arg)


def _position_info(model) -> tuple[int | None, int]:
    """(max learned positions or None for RoPE/relative, first position id) — e.g. RoBERTa starts at pad+1."""
    for name, mod in model.named_modules():
        if name.endswith(("position_embeddings", "wpe", "embed_positions")) and hasattr(mod, "weight"):
            pad = getattr(mod, "padding_idx", None)
            offset = getattr(mod, "offset", 0)  # BART's learned positions are stored shifted by 2
            return mod.weight.shape[0] - offset - (
                0 if pad is None else pad + 1
            ), 0 if pad is None else pad + 1
    return None, 0


def describe_backbone(model: PreTrainedModel) -> BackboneInfo:
    """Probe ``model`` (already switched to the softprompt attention) and label its attention slots.

    Sets ``module._softprompt_slot`` on every attention module so the attention function finds its prefix.
    """
    if compat.attn_implementation(model) != kv.ATTN_IMPLEMENTATION:
        raise UnsupportedModel("call kv.install(model) before describe_backbone(model)")
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    calls = _probe(model, seq2seq)
    if not calls:
        raise UnsupportedModel(
            f"{type(model).__name__}: no attention call reached the softprompt attention function; "
            "the model does not use transformers' AttentionInterface"
        )
    encoder = model.get_encoder() if seq2seq else None
    enc_ids = {id(m) for m in encoder.modules()} if encoder is not None else set()
    slots: list[Slot] = []
    counts: dict[str, int] = {}
    shapes = set()
    for module, q_shape, k_shape in calls:
        role: Role
        if seq2seq:
            role = (
                "encoder" if id(module) in enc_ids else ("cross" if k_shape[2] != q_shape[2] else "decoder")
            )
        else:
            role = "self"
        setattr(module, kv.SLOT_ATTR, len(slots))
        slots.append(Slot(role=role, layer=counts.get(role, 0)))
        counts[role] = counts.get(role, 0) + 1
        shapes.add((k_shape[1], k_shape[3]))
    if len(shapes) != 1:
        raise UnsupportedModel(
            f"{type(model).__name__}: attention layers differ in kv heads/head dim {shapes}"
        )
    ((kv_heads, head_dim),) = shapes
    causal = getattr(calls[0][0], "is_causal", False) and not seq2seq
    max_pos, base = _position_info(model)
    emb = input_embeddings(model).weight
    return BackboneInfo(
        family=model.config.model_type,
        kind=_kind(model, causal),
        hidden_size=emb.shape[1],
        vocab_size=emb.shape[0],
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        slots=tuple(slots),
        max_positions=max_pos,
        position_base=base,
        accepts_position_ids=_takes(model, "position_ids") and not seq2seq,
        sliding_window=getattr(model.config, "sliding_window", None),
        fingerprint=embedding_fingerprint(model),
        context_length=_context_length(model, max_pos, base),
        legacy_fingerprint=legacy_fingerprint(model),
    )


CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
"""Config attributes that state a context limit, in order of preference (RoPE models have no learned table)."""


def _context_length(model, max_pos: int | None, base: int) -> int | None:
    """Learned positions' limit when the model has them, else what the config states (None: unlimited/unknown)."""
    if max_pos is not None:
        return max_pos
    if getattr(model.config, "relative_attention_num_buckets", None) is not None:
        return None  # T5-style relative buckets: no hard limit
    for key in CONTEXT_KEYS:
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
