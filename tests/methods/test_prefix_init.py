"""Prefix tuning / P-tuning v2 start from the frozen model's own keys/values for real words (Li & Liang)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import make_model
from softprompt.errors import ConfigError
from softprompt.files.prompts import load_prompt, save_prompt
from softprompt.methods import make_config

CAUSAL = ["llama", "qwen2", "gemma2", "gpt2"]


def _ids(n, seed):
    return torch.randint(5, 200, (1, n), generator=torch.Generator().manual_seed(seed))


class Tok:
    """A tokenizer stand-in: each word is one id (its length + 100); id 1 is special."""

    all_special_ids = [1]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [100 + len(w) for w in text.split()]}


def _config(method, n=3, **kw):
    extra = {"mlp_hidden": 16} if method == "prefix-tuning" else {}
    return make_config(method, num_virtual_tokens=n, dropout=0.0, **extra, **kw)


@pytest.mark.parametrize("method", ["prefix-tuning", "p-tuning-v2"])
@pytest.mark.parametrize("family", CAUSAL)
def test_default_init_is_the_real_word_prefix_exactly(family, method):
    """Step 0 of the default (MLP included) is the frozen model's own keys/values for the words."""
    model = make_model(family)
    t, x = _ids(3, 1), _ids(3, 2)
    module = model.add_prompt("w", _config(method), init_token_ids=t[0].tolist())
    module.eval()
    assert torch.equal(module.contribute().kv, model.token_kv(t[0].tolist()))
    ref = model.backbone(input_ids=torch.cat([t, x], 1))
    torch.testing.assert_close(model(x, prompts="w").logits, ref.logits[:, 3:], atol=1e-5, rtol=0)
    if method == "prefix-tuning":  # the MLP is there, its last layer zero: the offset starts at 0
        assert module.config.reparameterize and module.transform[-1].weight.abs().sum() == 0


def test_words_are_label_words_then_frequent_vocabulary():
    model = make_model("llama")
    model.tokenizer = Tok()
    module = model.add_prompt("w", _config("p-tuning-v2", n=6, vocab_top_k=50), label_words=["good", "awful"])
    from softprompt.methods.prefix_tuning import word_ids

    ids = word_ids(module.config, model.init_context(label_words=["good", "awful"]))
    assert ids[:2] == [104, 105] and len(ids) == 6
    assert all(0 <= i < 51 and i != 1 for i in ids[2:])  # the 50 lowest non-special ids
    flat = model.token_kv(ids).permute(3, 0, 1, 2, 4).reshape(6, -1)
    assert torch.equal(module.embedding.weight.data, flat)
    other = word_ids(module.config, model.init_context(label_words=["good", "awful"], seed=1))
    assert other[:2] == ids[:2] and other != ids  # the vocabulary fill follows the seed


def test_random_stays_available_and_differs():
    model = make_model("llama")
    rand = model.add_prompt("r", _config("p-tuning-v2", n=8, init="random"))
    words = model.add_prompt("w", _config("p-tuning-v2", n=8))
    w = rand.embedding.weight
    assert abs(w.std().item() - 1) < 0.1 and abs(w.mean().item()) < 0.1  # N(0, 1)
    assert not torch.allclose(w, words.embedding.weight)
    peft_form = model.add_prompt("m", _config("prefix-tuning", init="random"))
    assert peft_form.base.abs().sum() == 0 and peft_form.transform[-1].weight.abs().sum() > 0


def test_init_text_with_the_mlp_and_its_check():
    model = make_model("llama")
    model.tokenizer = Tok()
    module = model.add_prompt("t", _config("prefix-tuning", init="text", init_text="ab c"))
    module.eval()
    assert torch.equal(module.contribute().kv, model.token_kv([102, 101, 102]))
    with pytest.raises(ConfigError, match="init_text"):
        make_config("prefix-tuning", init="text")
    with pytest.raises(ConfigError, match="init"):
        make_config("prefix-tuning", init="zeros")


def _train(model, name, steps=3):
    module = model.bank.get(name)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    x = _ids(5, 3)
    for _ in range(steps):
        model(x, prompts=name, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    return module


def test_mlp_moves_every_layer_and_ejects_to_its_training_form():
    model = make_model("llama")
    start = model.add_prompt("w", _config("prefix-tuning")).eject().kv
    module = _train(model, "w")
    model(_ids(5, 3), prompts="w", labels=_ids(5, 3)).loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in module.parameters())  # layers before the last learn too
    module.eval()
    trained = module.contribute().kv
    assert (trained - start).abs().max() > 1e-3  # training moved the prefix away from the words
    torch.testing.assert_close(module.eject().kv, trained, atol=0, rtol=0)
    flat = start.permute(3, 0, 1, 2, 4).reshape(start.shape[3], -1)
    assert torch.equal(module.base, flat)  # the base stays fixed; only the offset trains


@pytest.mark.parametrize("method", ["prefix-tuning", "p-tuning-v2"])
def test_saved_prompt_loads_without_the_backbone_forward(tmp_path, method, monkeypatch):
    model = make_model("llama")
    model.add_prompt("w", _config(method))
    before = _train(model, "w").eject().kv
    save_prompt(model, "w", tmp_path / "p")
    other = make_model("llama")
    monkeypatch.setattr(other, "token_kv", lambda ids: (_ for _ in ()).throw(AssertionError("forward")))
    load_prompt(other, tmp_path / "p", "w")
    assert other.bank.get("w").config.init == "words"
    torch.testing.assert_close(other.bank.get("w").eject().kv, before, atol=0, rtol=0)


def test_file_without_base_loads_as_the_peft_form(tmp_path):
    """Prefix prompts saved before the base prefix existed hold no ``base``: they load with it zero."""
    model = make_model("llama")
    module = model.add_prompt("r", _config("prefix-tuning", init="random"))
    save_prompt(model, "r", tmp_path / "p")
    f = tmp_path / "p" / "prompt.safetensors"
    tensors = load_file(str(f))
    del tensors["base"]
    save_file(tensors, str(f))
    other = make_model("llama")
    load_prompt(other, tmp_path / "p", "r")
    torch.testing.assert_close(other.bank.get("r").eject().kv, module.eject().kv, atol=0, rtol=0)
