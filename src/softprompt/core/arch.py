"""What softprompt needs to know about a backbone, derived from the loaded model, never stored by users.

A probe forward (a few tokens) through the ``softprompt`` attention function lists every attention module in
call order with its query/key shapes; from that we derive each slot's role (self / encoder / decoder / cross),
its key/value heads and head dim. Model quirks (RoPE vs learned positions, RoBERTa's position offset, whether
``position_ids`` are accepted) are read off the model here, so ``forward`` never asks which family it runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from softprompt.core import compat, kv
from softprompt.errors import UnsupportedModel

Kind = Literal["causal", "masked", "seq2seq", "encoder"]
Role = Literal["self", "encoder", "decoder", "cross"]


@dataclass(frozen=True)
class Slot:
    """One attention module that can take a key/value prefix."""

    role: Role
    layer: int


@dataclass(frozen=True)
class BackboneInfo:
    """Dimensions and conventions of a backbone; recorded in every prompt file as its fingerprint."""

    family: str
    kind: Kind
    hidden_size: int
    vocab_size: int
    num_kv_heads: int
    head_dim: int
    slots: tuple[Slot, ...]
    max_positions: int | None
    position_base: int
    accepts_position_ids: bool
    sliding_window: int | None
    fingerprint: str

    @property
    def num_layers(self) -> int:
        return sum(1 for s in self.slots if s.role in ("self", "encoder"))

    def to_json(self) -> dict:
        d = asdict(self)
        d["slots"] = [[s.role, s.layer] for s in self.slots]
        return d

    @staticmethod
    def from_json(d: dict) -> BackboneInfo:
        d = dict(d)
        d["slots"] = tuple(Slot(role=r, layer=l) for r, l in d["slots"])
        return BackboneInfo(**d)

    def mismatch(self, other: BackboneInfo) -> list[str]:
        """Names of the fields that differ (slots and fingerprint included)."""
        a, b = self.to_json(), other.to_json()
        return [k for k in a if a[k] != b.get(k)]


def embedding_fingerprint(model) -> str:
    """A short hash of the input-embedding matrix (shape + a strided sample of its values)."""
    w = model.get_input_embeddings().weight.detach()
    sample = w.flatten()[:: max(1, w.numel() // 4096)].float().cpu()
    h = hashlib.sha256(str(tuple(w.shape)).encode())
    h.update(sample.numpy().round(5).tobytes())
    return h.hexdigest()[:16]


def _kind(model, causal_attention: bool) -> Kind:
    if getattr(model.config, "is_encoder_decoder", False):
        return "seq2seq"
    if causal_attention:
        return "causal"
    return "masked" if model.get_output_embeddings() is not None else "encoder"


def _probe(model, seq2seq: bool) -> list:
    state = kv.KVPrefix(probing=True)
    dev = model.get_input_embeddings().weight.device
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


def describe_backbone(model) -> BackboneInfo:
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
    slots, counts, shapes = [], {}, set()
    for module, q_shape, k_shape in calls:
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
    emb = model.get_input_embeddings().weight
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
    )
