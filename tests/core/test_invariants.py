"""The same invariants over every soft method x every model family (tiny random models, CPU)."""

import inspect

import pytest
import torch

from conftest import batch, loss_of, make_model, method_config
from softprompt.core.generation import generate
from softprompt.files.prompts import load_prompt, save_prompt
from softprompt.testing.models import FAMILIES

GENERATIVE = [f for f in FAMILIES if f not in ("bert", "roberta")]

ATOL = 1e-4


def out_of(o):
    return o.logits if o.logits is not None else o.hidden


def test_trainable_set_is_exactly_the_prompt(family, method):
    model = make_model(family, [method])
    prompt = model.bank.get(method.replace("-", "_"))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in prompt.parameters()}
    assert trainable and not any(p.requires_grad for p in model.backbone.parameters())


def test_backbone_bit_identical_after_steps_and_prompt_moves(family, method):
    model = make_model(family, [method])
    name = method.replace("-", "_")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    prompt_before = [p.detach().clone() for p in model.trainable_parameters()]
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        loss = loss_of(model, batch(model, seed=step), name)
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(prompt_before, model.trainable_parameters()))


@pytest.mark.parametrize("form", ["training", "inference"])
def test_save_load_gives_identical_logits(family, method, form, tmp_path):
    model = make_model(family, [method])
    name = method.replace("-", "_")
    kw = batch(model)
    with model.inference():  # the path eval / predict / generate take (and the one eject computes on)
        expected = out_of(model(**kw, prompts=name))
    save_prompt(model, name, tmp_path / "p", form=form)
    fresh = make_model(family)
    loaded, meta = load_prompt(fresh, tmp_path / "p")
    assert meta["form"] == form
    with fresh.inference():
        assert torch.equal(out_of(fresh(**kw, prompts=loaded)), expected)


def test_ejected_equals_training_form(family, method):
    model = make_model(family, [method])
    name = method.replace("-", "_")
    kw = batch(model)
    expected = out_of(model(**kw, prompts=name))
    model.eject(name)
    assert model.bank.get(name).config.method == "static"
    torch.testing.assert_close(out_of(model(**kw, prompts=name)), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("left", [False, True])
def test_batched_equals_per_row(family, left):
    model = make_model(family, ["prompt-tuning", "p-tuning", "prefix-tuning", "p-tuning-v2"])
    names = model.bank.names()
    kw = batch(model, rows=6, length=7, left=left)
    rows = [names[0], None, names[2], names[1], names[3], names[0]]
    full = out_of(model(**kw, prompts=rows))
    for r in range(6):
        keep = kw["attention_mask"][r].bool()
        one = {
            k: (v[r : r + 1, keep] if k in ("input_ids", "attention_mask") else v[r : r + 1])
            for k, v in kw.items()
        }
        alone = out_of(model(**one, prompts=rows[r]))[0]
        got = full[r] if model.info.kind == "seq2seq" else full[r, keep]
        torch.testing.assert_close(got, alone, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", GENERATIVE)
def test_generate_cache_equals_no_cache(family, method):
    other = "prompt-tuning" if method != "prompt-tuning" else "prefix-tuning"
    model = make_model(family, [method, other])
    names = model.bank.names()
    kw = batch(model, rows=3, left=True)
    rows = [names[0], names[1], None]
    args = (kw["input_ids"], kw["attention_mask"], rows)
    cached = generate(model, *args, max_new_tokens=6, eos_token_id=-1)
    plain = generate(model, *args, max_new_tokens=6, eos_token_id=-1, use_cache=False, prompt_cache=False)
    assert cached.shape == (3, 6)
    assert torch.equal(cached, plain)


def test_gradient_checkpointing_gives_same_gradients(family, method):
    grads = []
    for ckpt in (False, True):
        model = make_model(family, [method])
        if ckpt:
            model.gradient_checkpointing_enable()
        model.train()
        loss_of(model, batch(model), method.replace("-", "_")).backward()
        grads.append([p.grad.clone() for p in model.trainable_parameters()])
    # prefix tuning's MLP starts with a zero last layer (step 0 = its real-word prefix): the layers before it
    # get their first gradient only after one step; the last layer (and every other method's) get one now
    assert grads[0][-1].abs().sum() > 0 and all(g is not None for g in grads[0])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_scoring_only_labelled_positions_equals_full_logits(family, method, monkeypatch):
    """Causal LMs compute vocabulary logits only where a label is predicted; same log-probs and gradients."""
    model = make_model(family, [method])
    name = method.replace("-", "_")
    kw = batch(model, rows=4, length=7)
    labels = (
        kw["decoder_input_ids"]
        if model.info.kind == "seq2seq"
        else kw["input_ids"].masked_fill(kw["attention_mask"] == 0, -100)
    )
    labels = labels.clone()
    labels[0, 1] = labels[2, 0] = -100  # holes in the middle and at the start
    runs = []
    for full in (False, True):
        if full:
            monkeypatch.setattr(type(model), "_takes_logits_to_keep", property(lambda self: False))
        model.zero_grad()
        out = model(**kw, prompts=name, labels=labels)
        out.loss.backward()
        runs.append((out.label_logprobs.detach(), [p.grad.clone() for p in model.trainable_parameters()]))
    (lp_keep, g_keep), (lp_full, g_full) = runs
    assert (lp_keep[labels == -100] == 0).all() and (lp_keep[labels != -100] < 0).float().mean() > 0.7
    torch.testing.assert_close(lp_keep, lp_full, atol=ATOL, rtol=0)
    for a, b in zip(g_keep, g_full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# ----- 16-bit backbones -------------------------------------------------------------------------------------
LOW = {"bfloat16": torch.bfloat16, "float16": torch.float16}
TOL = {"float32": ATOL, "bfloat16": 3e-2, "float16": 4e-3}
"""Tolerances per backbone dtype. float32: absolute. 16-bit: relative to the largest float32 logit, for the
16-bit model against the same weights in float32 (measured on CPU: bf16 <= 1.2 %, fp16 <= 0.15 %; bf16 keeps 8
mantissa bits, fp16 11). Batched == per-row and ejected == trained are held to the same bound (bit-exact on
CPU today, not promised on GPU kernels); save -> load is bit-exact in every dtype."""


@pytest.fixture(params=list(LOW))
def low(request):
    return request.param


def _low_model(family, method, dtype_name):
    model = make_model(family)
    model.backbone.to(LOW[dtype_name])
    model.add_prompt("p", method_config(method), seed=1)
    return model


def test_16bit_backbone_matches_float32_and_batched_equals_per_row(family, method, low):
    model, ref = _low_model(family, method, low), make_model(family)
    ref.add_prompt("p", method_config(method), seed=1)
    assert all(p.dtype == torch.float32 for p in model.bank.get("p").parameters())  # prompts stay float32
    kw = batch(model, rows=4, length=7)
    rows = ["p", None, "p", "p"]
    with model.inference(), ref.inference():
        full, want = out_of(model(**kw, prompts=rows)), out_of(ref(**kw, prompts=rows))
        assert full.dtype == LOW[low]
        scale = TOL[low] * float(want.abs().max())
        torch.testing.assert_close(full.float(), want, atol=scale, rtol=0)
        for r in range(4):
            keep = kw["attention_mask"][r].bool()
            one = {
                k: (v[r : r + 1, keep] if k in ("input_ids", "attention_mask") else v[r : r + 1])
                for k, v in kw.items()
            }
            alone = out_of(model(**one, prompts=rows[r]))[0]
            got = full[r] if model.info.kind == "seq2seq" else full[r, keep]
            torch.testing.assert_close(got.float(), alone.float(), atol=scale, rtol=0)


def test_16bit_save_load_is_exact_and_ejected_is_close(family, method, low, tmp_path):
    model = _low_model(family, method, low)
    kw = batch(model)
    with model.inference():
        expected = out_of(model(**kw, prompts="p"))
    for form in ("training", "inference"):
        save_prompt(model, "p", tmp_path / form, form=form)
        fresh = make_model(family)
        fresh.backbone.to(LOW[low])
        load_prompt(fresh, tmp_path / form)
        with fresh.inference():
            assert torch.equal(out_of(fresh(**kw, prompts="p")), expected)
    model.eject("p")
    with model.inference():
        ejected = out_of(model(**kw, prompts="p"))
    torch.testing.assert_close(
        ejected.float(), expected.float(), atol=TOL[low] * float(expected.abs().max()), rtol=0
    )


def test_16bit_backbone_trains_float32_prompts(family, method, low):
    model = _low_model(family, method, low)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    prompt_before = [p.detach().clone() for p in model.trainable_parameters()]
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.train()
    for step in range(2):
        loss = loss_of(model, batch(model, seed=step), "p")
        assert torch.isfinite(loss)
        loss.backward()
        assert all(
            p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
            for p in model.trainable_parameters()
        )
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(prompt_before, model.trainable_parameters()))


__all__ = ["low"] + [
    n
    for n, f in list(globals().items())
    if n.startswith("test_") and "method" in inspect.signature(f).parameters
]
"""The per-method invariants (and the fixture they need): ``from core.test_invariants import *`` runs them for
a test file's own method."""
