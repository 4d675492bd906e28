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


def test_whole_cache_keeps_every_token_of_a_sliding_window_layer():
    mistral = tiny_model("mistral").eval()  # window 6
    x = ids(10)
    with torch.no_grad():
        full = mistral(x).logits
        for whole, kept in ((False, 5), (True, 9)):  # transformers trims a window layer to window - 1 tokens
            cache = compat.new_cache(mistral, whole=whole)
            mistral(x[:, :9], use_cache=True, **compat.cache_kwargs(mistral, cache))
            assert compat.cache_tensors(cache)[0][0].shape[2] == kept
            step = mistral(x[:, 9:], use_cache=True, **compat.cache_kwargs(mistral, cache)).logits
            assert torch.allclose(
                step[:, 0], full[:, -1], atol=1e-5
            )  # the mask applies the window either way


def test_seq2seq_cache_round_trip_continues_like_the_full_forward():
    t5 = tiny_model("t5").eval()
    dec = ids(4)
    with torch.no_grad():
        full = t5(input_ids=ids(), decoder_input_ids=dec).logits
        cache = compat.new_cache(t5, seq2seq=True)
        out = t5(
            input_ids=ids(), decoder_input_ids=dec[:, :3], use_cache=True, **compat.cache_kwargs(t5, cache)
        )
        own, cross = compat.seq2seq_cache_tensors(compat.cache_of(out))
        assert own[0][0].shape[2] == 3 and cross[0][0].shape[2] == ids().shape[1]  # (B, H_kv, T or S, D)
        rebuilt = compat.seq2seq_cache_from_tensors(own, cross)
        step = t5(
            encoder_outputs=(out.encoder_last_hidden_state,),
            decoder_input_ids=dec[:, 3:],
            use_cache=True,
            **compat.cache_kwargs(t5, rebuilt),
        ).logits
    assert torch.allclose(step[:, 0], full[:, -1], atol=1e-5)


def test_decoder_positions_are_looked_up_per_row():
    bart, t5 = tiny_model("bart").eval(), tiny_model("t5").eval()
    assert compat.decoder_positions_unknown(bart) is None and compat.decoder_positions_unknown(t5) is None
    x, dec = ids(), ids(3)
    with torch.no_grad():
        plain = bart(input_ids=x, decoder_input_ids=dec).logits
        with compat.decoder_positions(bart, torch.arange(3).repeat(2, 1)):  # the columns: nothing changes
            same = bart(input_ids=x, decoder_input_ids=dec).logits
        with compat.decoder_positions(bart, torch.tensor([[0, 1, 2], [4, 5, 6]])):  # row 1 starts at 4
            moved = bart(input_ids=x, decoder_input_ids=dec).logits
        with compat.decoder_positions(t5, torch.tensor([[4, 5, 6], [4, 5, 6]])):  # relative: nothing to do
            rel = t5(input_ids=x, decoder_input_ids=dec).logits
        assert torch.allclose(rel, t5(input_ids=x, decoder_input_ids=dec).logits, atol=1e-6)
    assert torch.allclose(same, plain, atol=1e-6) and torch.allclose(moved[0], plain[0], atol=1e-6)
    assert not torch.allclose(moved[1], plain[1], atol=1e-3)
    assert not bart.get_decoder().embed_positions._forward_hooks  # the hook leaves with the block


def test_unknown_decoder_positions_are_named():
    bart = tiny_model("bart").eval()
    bart.get_decoder().embed_positions = torch.nn.Linear(2, 2)  # not a table softprompt can index
    assert "Linear" in compat.decoder_positions_unknown(bart)
