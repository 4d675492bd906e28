"""softprompt.testing's tiny-model builder: seeded, and its config fields replaceable (a real model's shape)."""

import torch

from softprompt.testing.models import tiny_model


def test_same_seed_same_weights_and_no_override_is_the_tiny_config():
    a, b = tiny_model("llama"), tiny_model("llama")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert (a.config.hidden_size, a.config.num_hidden_layers, a.config.pad_token_id) == (32, 2, 0)
    assert not a.training


def test_config_overrides_reach_the_constructor():
    m = tiny_model("llama", hidden_size=48, pad_token_id=None, dtype=torch.bfloat16)
    head = (m.config.hidden_size, m.config.head_dim, m.config.pad_token_id)
    assert head == (48, 12, None)  # head_dim derived in the constructor: 48 / 4 heads
    assert m.get_input_embeddings().weight.shape == (256, 48)
    assert {p.dtype for p in m.parameters()} == {torch.bfloat16}
    assert m.config.intermediate_size == 64  # fields not named keep the tiny config's value
