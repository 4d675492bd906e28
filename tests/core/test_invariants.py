"""The same invariants over every soft method x every model family (tiny random models, CPU)."""

import pytest
import torch

from conftest import batch, loss_of, make_model
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
    expected = out_of(model(**kw, prompts=name))
    save_prompt(model, name, tmp_path / "p", form=form)
    fresh = make_model(family)
    loaded, meta = load_prompt(fresh, tmp_path / "p")
    assert meta["form"] == form
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
