"""Word-based inits start at the embedding module's output (scaled embeddings included); building a prompt
never touches the global RNG."""

import pytest
import torch

from conftest import SOFT_METHODS, make_model
from softprompt.core.model import PromptedModel
from softprompt.methods import make_config
from softprompt.testing.models import FAMILIES, tiny_model


def _ids(n, seed):
    return torch.randint(5, 200, (1, n), generator=torch.Generator().manual_seed(seed))


class _Tok:
    """The init text (and every label word) "tokenizes" to ``ids``."""

    all_special_ids = []

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(self.ids)}


def _scaled_bart():
    from transformers import AutoModelForSeq2SeqLM

    config = FAMILIES["bart"][1]()
    config.scale_embedding = True  # BART-style: the embedding module multiplies by sqrt(d_model)
    torch.manual_seed(0)
    return AutoModelForSeq2SeqLM.from_config(config).eval()


def test_the_reference_models_do_scale_their_embeddings():
    for backbone in (tiny_model("gemma2"), _scaled_bart()):
        module = backbone.get_input_embeddings()
        ids = torch.tensor([[7, 9]])
        ratio = float(module(ids).norm() / module.weight[ids].norm())
        assert ratio == pytest.approx(
            32**0.5, rel=1e-4
        )  # sqrt(hidden): starting at raw rows is 5.7x too small


@pytest.mark.parametrize("family", [*FAMILIES, "bart-scaled"])
@pytest.mark.parametrize(
    ("method", "init"), [("prompt-tuning", "text"), ("prompt-tuning", "labels"), ("p-tuning", "text")]
)
def test_word_init_equals_the_frozen_model_fed_those_words(family, method, init):
    backbone = _scaled_bart() if family == "bart-scaled" else tiny_model(family)
    t, x = _ids(3, 1), _ids(4, 2)
    model = PromptedModel(backbone, tokenizer=_Tok(t[0].tolist()))
    extra = {"encoder": "none"} if method == "p-tuning" else {}  # P-tuning's raw embeddings, no encoder
    config = make_config(method, num_virtual_tokens=3, init=init, init_text="words", **extra)
    model.add_prompt("w", config, label_words=["positive"])
    kw = {"decoder_input_ids": _ids(2, 3)} if model.info.kind == "seq2seq" else {}
    ours = model(x, prompts="w", **kw)
    ref = backbone(input_ids=torch.cat([t, x], 1), **kw)
    want = ref.logits if model.info.kind == "seq2seq" else ref.logits[:, 3:]
    torch.testing.assert_close(ours.logits, want, atol=1e-5, rtol=0)


def test_template_word_slots_start_at_the_module_output():
    backbone = tiny_model("gemma2")
    model = PromptedModel(backbone)
    module = model.add_prompt(
        "s", make_config("prompt-tuning", num_virtual_tokens=2, init="random"), init_token_ids=[None, 11]
    )
    torch.testing.assert_close(module.embedding[1], backbone.get_input_embeddings()(torch.tensor([11]))[0])


@pytest.mark.parametrize("method", SOFT_METHODS)
def test_building_a_prompt_leaves_the_global_rng_alone(method):
    model = make_model("llama")
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = model.add_prompt("a", make_config(method, num_virtual_tokens=3), seed=5)
    assert torch.equal(torch.rand(4), expected)
    b = model.add_prompt("b", make_config(method, num_virtual_tokens=3), seed=5)
    c = model.add_prompt("c", make_config(method, num_virtual_tokens=3), seed=6)
    pa, pb, pc = ([p.detach() for p in m.parameters()] for m in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))  # the seed decides the init...
    assert not all(torch.equal(x, y) for x, y in zip(pa, pc))  # ...and only the seed


def test_prompt_tuning_starts_from_a_saved_prompt_in_either_form(tmp_path):
    """init="file" reads a trained prompt-tuning prompt ("embedding", the training form) as well as an ejected
    one ("embeds"): the new prompt equals the saved one exactly."""
    import softprompt
    from softprompt.core.model import PromptedModel
    from softprompt.testing.models import tiny_model

    model = PromptedModel(tiny_model("llama"))
    model.add_prompt(
        "src", softprompt.make_config("prompt-tuning", num_virtual_tokens=3, init="random"), seed=1
    )
    want = model.bank.get("src").contribute().embeds
    for form in ("training", "inference"):
        softprompt.save_prompt(model, "src", tmp_path / form, form=form)
        cfg = softprompt.make_config(
            "prompt-tuning", num_virtual_tokens=3, init="file", init_file=str(tmp_path / form)
        )
        model.add_prompt(f"to_{form}", cfg)
        assert torch.equal(model.bank.get(f"to_{form}").contribute().embeds, want)
