"""Keys/values the frozen model computes itself, captured to serve as a key/value prefix (S, 2, H_kv, P, D).

A forward run with ``KVPrefix(capture=...)`` stores each attention slot's own keys/values instead of adding a
prefix (kv.py). Two uses: a prefix initialized from text (``init='text'``: the keys/values of real tokens,
``PromptedModel.token_kv``), and the prompt-KV cache: prompts that only prepend virtual input tokens on a
causal model are turned once into key/value prefixes — the virtual tokens' keys/values do not depend on what
follows them, so they are computed once per prompt and reused by every call (``generate``, the serving
engine) until the prompt's parameters change.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from softprompt.core import kv
from softprompt.core.arch import input_embeddings
from softprompt.core.prompt import Contribution

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from softprompt.core.arch import BackboneInfo
    from softprompt.core.bank import PromptModule
    from softprompt.core.model import PromptedModel


@torch.no_grad()
def capture(
    backbone: PreTrainedModel, info: BackboneInfo, **inputs: Any
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each attention slot's own (keys, values) for ``inputs``, in slot order; each on its layer's device."""
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # slot -> its (keys, values)
    backbone(**inputs, use_cache=False, **{kv.KWARG: kv.KVPrefix(capture=captured)})
    return [captured[s] for s in range(len(info.slots))]


def token_kv(backbone: PreTrainedModel, info: BackboneInfo, ids: Sequence[int]) -> torch.Tensor:
    """The frozen model's own keys/values for ``ids`` at positions 0.., as a prefix (S, 2, H_kv, P, D).

    The backbone must already run softprompt's attention (``PromptedModel.enable_prefixes``).
    """
    dev = input_embeddings(backbone).weight.device
    x = torch.as_tensor([list(ids)], device=dev)
    extra = {"decoder_input_ids": x[:, :1]} if info.kind == "seq2seq" else {}
    slots = capture(backbone, info, input_ids=x, **extra)
    if info.kind == "seq2seq":  # decoder/cross slots see a 1-token decoder: use zeros there
        return torch.stack(
            [
                torch.stack([k[0], v[0]]).to(dev)
                if k.shape[2] == x.shape[1]
                else torch.zeros_like(slots[0][0][0], device=dev).expand(2, -1, -1, -1)
                for k, v in slots
            ]
        )
    return torch.stack([torch.stack([k[0], v[0]]).to(dev) for k, v in slots])  # on the embedding's device


# ----- the prompt-KV cache -------------------------------------------------------------------------------
_PROMPT_KV_LOCK = threading.Lock()


def _version(module) -> tuple:
    return tuple((id(p), p._version) for p in module.parameters())


def virtual_tokens_as_prefix(model: PromptedModel) -> bool:
    """Whether prepended virtual tokens may run as a key/value prefix (the prompt-KV cache) on ``model``.

    The sliding-window rule, the same in ``generate`` and in the serving engine: a window (Mistral, the local
    layers of Gemma 2/3) applies to the sequence tokens, the prompt's virtual input tokens included, while a
    prompt's key/value prefix (prefix tuning, P-tuning v2) stays visible to every token. Virtual tokens turned
    into a prefix would stay visible too, so the conversion is exact only on a causal model without a window.
    """
    return model.info.kind == "causal" and not model.info.sliding_window and model.takes_prefixes


def prompt_kv(model: PromptedModel, name: str) -> Contribution:
    """Keys/values of prompt ``name``'s prepended virtual tokens, as a prefix (cached per parameter version).

    The cache entry keeps the module it was computed from: a prompt removed and re-added under the same name
    is a new module and never gets the old keys/values (parameter ids alone can be reused after a free).
    """
    module = model.bank.get(name)
    with _PROMPT_KV_LOCK:
        ver = _version(module)
        hit = model._prompt_kv.get(name)
        if hit is not None and hit[0] is module and hit[1] == ver:
            return hit[2]
        out = prompt_kv_of(model, module)
        model._prompt_kv[name] = (module, ver, out)
        return out


def prompt_kv_of(model: PromptedModel, module: PromptModule) -> Contribution:
    """Uncached: the key/value prefix equal to prompt ``module``'s prepended virtual tokens."""
    c = module.contribute()
    assert c.embeds is not None  # (asked for prompts of prepended virtual tokens only)
    model.enable_prefixes()
    emb = input_embeddings(model.backbone).weight
    embeds = c.embeds.detach()[None].to(device=emb.device, dtype=emb.dtype)  # (1, P, H)
    pos = torch.arange(embeds.shape[1], device=embeds.device)[None] + model.info.position_base
    slots = capture(model.backbone, model.info, inputs_embeds=embeds, position_ids=pos)
    kvs = torch.stack([torch.stack([k[0], v[0]]).to(emb.device) for k, v in slots])  # (S, 2, H_kv, P, D)
    return Contribution(kv=kvs)
