"""Adaption prompt (LLaMA-Adapter, Zhang et al. 2023): P learnable prompt vectors on each of the top L decoder
layers, projected by that layer's own key/value projections and attended by its queries in a second softmax whose
output is added to the layer's attention, scaled by a zero-initialized gate (the model is exactly unchanged at
step 0: the gate multiplies the values).

Decoder-only models whose attention has separate ``k_proj`` / ``v_proj`` (Llama, Mistral, Qwen2, Gemma, ...;
``core.kv.project_kv``); other families are refused when the prompt is added. PEFT's ``ADAPTION_PROMPT`` files
(Llama and Mistral in PEFT) import and export with equal logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from softprompt.core.prompt import Contribution, InitContext, Method, MethodConfig, PeftMapping
from softprompt.errors import PromptFileError, check_range


@dataclass(kw_only=True)
class AdaptionPromptConfig(MethodConfig):
    """Adaption prompt: gated prompts on the top layers' attention, zero-initialized."""

    method: str = "adaption-prompt"
    num_virtual_tokens: int = 10
    """Prompt vectors per adapted layer (LLaMA-Adapter: 10); 1..4096."""
    adapter_layers: int = 30
    """Adapted layers, counted from the top (LLaMA-Adapter: 30 of 32); capped at the model's depth; 1..1024."""

    def __post_init__(self):
        check_range("num_virtual_tokens", self.num_virtual_tokens, low=1, high=4096)
        check_range("adapter_layers", self.adapter_layers, low=1, high=1024)


class AdaptionPrompt(nn.Module):
    def __init__(self, config: AdaptionPromptConfig, ctx: InitContext):
        super().__init__()
        self.config = config
        selfs = [i for i, s in enumerate(ctx.info.slots) if s.role == "self"]
        self.slots = selfs[-config.adapter_layers :] or [0]  # the top L decoder layers' attention slots
        ctx.project_kv(self.slots[0], torch.zeros(1, ctx.info.hidden_size))  # an unsupported family: refused
        self.num_slots = len(ctx.info.slots)
        self.layers = [ctx.info.slots[i].layer for i in self.slots]
        self._project = ctx.project_kv
        g = torch.Generator().manual_seed(ctx.seed)
        shape = (len(self.slots), config.num_virtual_tokens, ctx.info.hidden_size)
        self.prompt = nn.Parameter(torch.randn(shape, generator=g))  # (L, P, H), standard normal as PEFT
        self.gate = nn.Parameter(torch.zeros(len(self.slots)))  # (L,) zero-init: no effect at step 0

    def contribute(self) -> Contribution:
        parts: dict[int, torch.Tensor | None] = dict.fromkeys(range(self.num_slots))
        for j, slot in enumerate(self.slots):
            k, v = self._project(slot, self.prompt[j])  # (H_kv, P, D) each
            parts[slot] = torch.stack([k, v * self.gate[j].to(v.dtype)])  # the gate scales the values
        ref = parts[self.slots[0]]
        assert ref is not None  # (set just above)
        zeros = ref.new_zeros(ref.shape)
        return Contribution(adapter=torch.stack([zeros if p is None else p for p in parts.values()]))

    def eject(self) -> Contribution:
        with torch.no_grad():
            adapter = self.contribute().adapter
        assert adapter is not None  # (contribute always gives one)
        return Contribution(adapter=adapter.detach().clone())


LAYER = re.compile(r"layers\.(\d+)\.self_attn\.adaption_(prompt|gate)$")


def _load_peft(module: AdaptionPrompt, tensors: dict[str, torch.Tensor]) -> None:
    """PEFT's per-layer ``...layers.N.self_attn.adaption_prompt`` (1, P, H) and ``adaption_gate`` (1,)."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        m = LAYER.search(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    layers = sorted(found)
    if len(layers) != len(module.slots) or any(len(found[i]) != 2 for i in layers):
        raise PromptFileError(
            f"ADAPTION_PROMPT: the file adapts layers {layers}; this prompt adapts the top {len(module.slots)}"
        )
    for j, i in enumerate(layers):
        if tuple(found[i]["prompt"].shape[1:]) != tuple(module.prompt.shape[1:]):
            raise PromptFileError(
                f"ADAPTION_PROMPT: layer {i}'s prompt has shape {tuple(found[i]['prompt'].shape)}; "
                f"expected (1, {', '.join(map(str, module.prompt.shape[1:]))})"
            )
        module.prompt[j].copy_(found[i]["prompt"][0])
        module.gate[j].copy_(found[i]["gate"].reshape(()))


def _save_peft(module: AdaptionPrompt) -> tuple[dict, dict[str, torch.Tensor]]:
    fields = {"adapter_len": module.config.num_virtual_tokens, "adapter_layers": len(module.slots),
              "target_modules": "self_attn"}  # fmt: skip
    tensors = {}
    for j, layer in enumerate(module.layers):
        stem = f"base_model.model.model.layers.{layer}.self_attn.adaption_"
        tensors[stem + "prompt"], tensors[stem + "gate"] = module.prompt[j][None], module.gate[j].reshape(1)
    return fields, tensors


METHOD = Method(
    config=AdaptionPromptConfig,
    module=AdaptionPrompt,
    train={"lr": 9e-3},
    peft=PeftMapping(
        peft_type="ADAPTION_PROMPT",
        fields=lambda cfg: {"adapter_layers": cfg.get("adapter_layers") or 1},
        load_all=_load_peft,
        save_all=_save_peft,
    ),
)
"""Training: lr 9e-3, LLaMA-Adapter's (Zhang et al. 2023, instruction tuning of LLaMA-7B: lr 9e-3, warm-up, 5
epochs), kept after bench/results/lr_sweep-smollm2.md (SmolLM2-135M on Rotten Tomatoes, 10 tokens on all 30 layers,
batch 8, 24 steps, seed 0, accuracy on 100 validation reviews, about +-5 points of noise; 2026-12-07, shared
machine): 3e-3 / 9e-3 / 3e-2 give 0.71 -> 0.78 / 0.77 / 0.51; 3e-3 and 9e-3 within noise, 3e-2 overshoots."""
