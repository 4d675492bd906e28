"""Each shim of ``core/compat.py`` against the installed transformers / accelerate: the next API change fails
here first, naming the shim."""

import pytest
import torch

from softprompt.core import compat
from softprompt.testing.models import tiny_model


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama").eval()


def ids(n: int = 5, rows: int = 2) -> torch.Tensor:
    return torch.arange(3, 3 + n).repeat(rows, 1)  # (B, T)


def test_registered_attention_is_used_and_reported(llama):
    seen = []

    def spy(module, *args, **kwargs):
        seen.append(type(module).__name__)
        return compat.sdpa_attention_forward(module, *args, **kwargs)

    compat.register_attention("compat_spy", spy)
    before = compat.attn_implementation(llama)
    try:
        compat.set_attn_implementation(llama, "compat_spy")
        assert compat.attn_implementation(llama) == "compat_spy"
        with torch.no_grad():
            spied = llama(ids()).logits
        assert len(seen) == llama.config.num_hidden_layers
    finally:
        compat.set_attn_implementation(llama, before)
    with torch.no_grad():
        assert torch.allclose(spied, llama(ids()).logits, atol=1e-5)  # SDPA behind a spy changes nothing


def test_accepts_kwarg_reads_signatures():
    def f(a, *, logits_to_keep=0):
        return a

    assert compat.accepts_kwarg(f, "logits_to_keep") and not compat.accepts_kwarg(f, "cache")
    assert not compat.accepts_kwarg(object(), "x")  # no signature: False, not an exception


def test_logits_to_keep_computes_the_last_positions_only(llama):
    assert compat.takes_logits_to_keep(llama)
    with torch.no_grad():
        full = llama(ids()).logits  # (B, T, V)
        last = llama(ids(), logits_to_keep=1).logits  # (B, 1, V)
    assert last.shape[1] == 1 and torch.allclose(last[:, 0], full[:, -1], atol=1e-5)


def test_cache_round_trip_continues_like_the_full_forward(llama):
    x = ids(6)
    with torch.no_grad():
        full = llama(x).logits
        out = llama(x[:, :4], use_cache=True, **compat.cache_kwargs(llama, compat.new_cache(llama)))
        cache = compat.cache_of(out)
        layers = compat.cache_tensors(cache)
        assert len(layers) == llama.config.num_hidden_layers and layers[0][0].shape[2] == 4  # (B, H_kv, T, D)
        rebuilt = compat.cache_from_tensors([(k.clone(), v.clone()) for k, v in layers])
        step = llama(x[:, 4:], use_cache=True, **compat.cache_kwargs(llama, rebuilt)).logits
    assert torch.allclose(step, full[:, 4:], atol=1e-5)


def test_seq2seq_cache_has_both_sides():
    t5 = tiny_model("t5").eval()
    cache = compat.new_cache(t5, seq2seq=True)
    assert hasattr(cache, "self_attention_cache") and hasattr(cache, "cross_attention_cache")
    with torch.no_grad():
        out = t5(input_ids=ids(), decoder_input_ids=ids(2), use_cache=True, **compat.cache_kwargs(t5, cache))
    assert compat.cache_of(out).get_seq_length() == 2


def test_device_of_and_an_empty_module():
    assert compat.device_of(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert compat.device_of(torch.nn.Identity()) == torch.device("cpu")


def test_checkpointed_layers_give_the_same_gradients():
    plain, wrapped = tiny_model("llama").eval(), tiny_model("llama").eval()
    assert compat.checkpoint_layers(wrapped) and compat.checkpoint_layers(wrapped)  # idempotent
    assert not compat.checkpoint_layers(torch.nn.Linear(2, 2))
    grads = []
    for m in (plain, wrapped):
        embeds = m.get_input_embeddings()(ids()).detach().requires_grad_(True)
        m(inputs_embeds=embeds).logits.square().mean().backward()
        grads.append(embeds.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_reset_accelerate_state_only_on_another_precision():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    compat.reset_accelerate_state("no")
    Accelerator(cpu=True, mixed_precision="no")
    compat.reset_accelerate_state("no")
    assert AcceleratorState._shared_state.get("_mixed_precision") == "no"  # same precision: kept
    compat.reset_accelerate_state("bf16")
    assert "_mixed_precision" not in AcceleratorState._shared_state  # another one: forgotten
