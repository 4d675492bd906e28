"""The attention path: the user's implementation is kept until a prefix needs softprompt's, an unwrappable
one refuses prefixes clearly, and softprompt's function adds no mask SDPA would not have had."""

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from conftest import batch, make_model, method_config
from softprompt.core import compat, kv
from softprompt.core.generation import generate
from softprompt.core.model import PromptedModel
from softprompt.errors import UnsupportedModel
from softprompt.testing.models import tiny_model

CALLS = []


def _counting(module, query, key, value, attention_mask, **kwargs):
    """A stand-in for an implementation softprompt cannot wrap (flash attention, say): SDPA, counted."""
    assert kv.KWARG not in kwargs
    CALLS.append(1)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register("counting_sdpa", _counting)
AttentionMaskInterface.register("counting_sdpa", sdpa_mask)


def _impl(model):
    return compat.attn_implementation(model.backbone)


@pytest.mark.parametrize(("family", "impl"), [("llama", "sdpa"), ("gemma2", "eager"), ("bert", "sdpa")])
def test_loaded_implementation_is_kept_until_a_prefix_needs_ours(family, impl):
    model = make_model(family, ["prompt-tuning", "p-tuning"])
    assert model.attn_implementation == impl and _impl(model) == impl
    model(**batch(model), prompts="prompt_tuning")
    assert _impl(model) == impl
    model.add_prompt("prefix", method_config("prefix-tuning"))
    assert _impl(model) == kv.ATTN_IMPLEMENTATION


def test_unwrappable_implementation_runs_input_methods_and_refuses_prefixes_clearly():
    backbone = tiny_model("llama")
    backbone.set_attn_implementation("counting_sdpa")
    model = PromptedModel(backbone)
    reference = make_model("llama")
    for m in (model, reference):
        m.add_prompt("pt", method_config("prompt-tuning"), seed=1)
    assert _impl(model) == "counting_sdpa"
    kw = batch(model)
    CALLS.clear()
    out = model(**kw, prompts=["pt", None, "pt"])
    assert len(CALLS) == 2  # both layers ran the user's implementation
    torch.testing.assert_close(
        out.logits, reference(**kw, prompts=["pt", None, "pt"]).logits, atol=1e-6, rtol=0
    )
    ids, mask = batch(model, left=True)["input_ids"], batch(model, left=True)["attention_mask"]
    assert torch.equal(
        generate(model, ids, mask, "pt", max_new_tokens=4),
        generate(reference, ids, mask, "pt", max_new_tokens=4),
    )
    with pytest.raises(UnsupportedModel, match=r"attn_implementation='counting_sdpa'.*'sdpa'"):
        model.add_prompt("px", method_config("prefix-tuning"))
    assert "px" not in model.bank and _impl(model) == "counting_sdpa"


def _masks(monkeypatch):
    seen = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append((attention_mask, key.shape[2], kwargs.get("is_causal")))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(compat, "sdpa_attention_forward", spy)
    return seen


def test_no_mask_is_materialized_without_a_prefix_and_only_p_columns_with_one(monkeypatch):
    model = make_model("llama", ["prompt-tuning", "prefix-tuning"], n=3)  # prefix-tuning: 4 positions
    seen = _masks(monkeypatch)
    ids = torch.randint(5, 200, (2, 5))
    model(ids, prompts="prompt_tuning")  # no prefix, no padding: SDPA's own causal kernel, as transformers
    assert [m for m, _, _ in seen] == [None, None]
    seen.clear()
    model(ids, torch.tensor([[1] * 5, [1] * 3 + [0] * 2]), prompts=["prefix_tuning", None])
    assert all(m.shape == (2, 1, 5, 4 + 5) and m.dtype == torch.bool for m, _, _ in seen)
    assert all(not m[1, :, :, :4].any() for m, _, _ in seen)  # the row without a prefix sees none of it


def test_decoding_with_a_full_prefix_passes_no_mask(monkeypatch):
    model = make_model("llama", ["prefix-tuning"], n=3)  # 3 prefix positions
    ids = torch.randint(5, 200, (2, 5))
    seen = _masks(monkeypatch)
    generate(model, ids, None, "prefix_tuning", max_new_tokens=3, eos_token_id=[])
    steps = seen[2:]  # after the prefill's two layers: one-token steps
    assert len(steps) == 4 and all(m is None and k == 3 + 5 + i // 2 + 1 for i, (m, k, _) in enumerate(steps))
