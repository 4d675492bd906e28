"""Reference values the math fixes: a prompt made of the model's own token embeddings / keys and values."""

import pytest
import torch

from conftest import make_model
from softprompt.methods import Contribution
from softprompt.methods.static import StaticConfig, StaticPrompt
from softprompt.testing.models import FAMILIES

CAUSAL = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]


def _ids(n, seed):
    return torch.randint(5, 200, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prompt_tuning_from_token_ids_equals_frozen_model_on_t_then_x(family):
    model = make_model(family, ["prompt-tuning"], n=4)
    t, x = _ids(4, 1), _ids(5, 2)
    model.bank.get("prompt_tuning").embedding.data.copy_(model.backbone.get_input_embeddings()(t)[0])
    kw, ref_kw = {}, {}
    if model.info.kind == "seq2seq":
        kw = ref_kw = {"decoder_input_ids": _ids(3, 3)}
    ours = model(x, prompts="prompt_tuning", **kw)
    ref = model.backbone(input_ids=torch.cat([t, x], 1), **ref_kw)
    if model.info.kind == "seq2seq":
        torch.testing.assert_close(ours.logits, ref.logits, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(ours.logits, ref.logits[:, 4:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", CAUSAL)
def test_prefix_of_own_keys_values_equals_frozen_model_on_t_then_x(family):
    model = make_model(family)
    t, x = _ids(3, 1), _ids(3, 2)  # 6 tokens: inside Mistral's sliding window, where a prefix is exact
    prefix = model.token_kv(t[0].tolist())  # (S, 2, H_kv, P, D): the frozen model's own keys/values for t
    model.bank.add(
        "own", StaticPrompt(StaticConfig(num_virtual_tokens=3), contribution=Contribution(kv=prefix))
    )
    ours = model(x, prompts="own")
    ref = model.backbone(input_ids=torch.cat([t, x], 1))
    torch.testing.assert_close(ours.logits, ref.logits[:, 3:], atol=1e-5, rtol=0)
    assert not torch.allclose(model(x).logits, ours.logits, atol=1e-3)  # the prefix does matter


@pytest.mark.parametrize("family", CAUSAL)
def test_prefix_initialized_from_text_equals_frozen_model_on_text_then_x(family):
    from softprompt.methods import make_config

    model = make_model(family)
    t, x = _ids(3, 1), _ids(3, 2)

    class Tok:  # the init text is "tokenized" to t
        all_special_ids = []

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": t[0].tolist()}

    model.tokenizer = Tok()
    model.add_prompt(
        "words", make_config("p-tuning-v2", num_virtual_tokens=3, init="text", init_text="t", dropout=0.0)
    )
    ref = model.backbone(input_ids=torch.cat([t, x], 1))
    torch.testing.assert_close(model(x, prompts="words").logits, ref.logits[:, 3:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
def test_residual_p_tuning_starts_at_its_initial_embeddings(encoder):
    from softprompt.methods import make_config

    model = make_model("llama")
    module = model.add_prompt(
        "pt", make_config("p-tuning", num_virtual_tokens=3, encoder=encoder, residual=True, init="random")
    )
    torch.testing.assert_close(module.contribute().embeds, module.embedding.weight, atol=0, rtol=0)
