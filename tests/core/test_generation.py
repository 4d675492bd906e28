"""Generation: every EOS id stops a row, stop strings, transformers' sampler, the context limit."""

import pytest
import torch

from conftest import batch, make_model
from softprompt.core.generation import generate, generate_text
from softprompt.errors import ConfigError
from softprompt.testing.tokenizer import tiny_tokenizer

N = 8


def _setup(family="llama"):
    model = make_model(family, ["prompt-tuning"])
    model.tokenizer = tiny_tokenizer("causal")
    kw = batch(model, rows=3, left=True)
    # ids the tiny tokenizer can decode to words (the tiny model's vocabulary is wider)
    kw["input_ids"] = kw["input_ids"] % 200 + 20
    args = (kw["input_ids"], kw["attention_mask"], ["prompt_tuning", None, "prompt_tuning"])
    free = generate(model, *args, max_new_tokens=N, eos_token_id=[])
    assert free.shape == (3, N)
    return model, args, free


def _expected(row: list[int], ids: list[int]) -> list[int]:
    """``row`` cut after its first id in ``ids``, filled with ``ids[0]`` to full length."""
    end = next((i for i, t in enumerate(row) if t in ids), len(row) - 1)
    return row[: end + 1] + [ids[0]] * (len(row) - end - 1)


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_every_eos_id_stops_its_row(family):
    model, args, free = _setup(family)
    eos = [free[0, 2].item(), free[1, 1].item()]  # two ids, each the one some row reaches first
    for given, ids in ((eos, eos), (eos[1], [eos[1]]), (None, eos)):
        if given is None:  # default: all of the generation config's EOS ids
            model.backbone.generation_config.eos_token_id = eos
        out = generate(model, *args, max_new_tokens=N, eos_token_id=given)
        want = [_expected(free[r].tolist(), ids) for r in range(3)]
        assert out.tolist() == [w[: out.shape[1]] for w in want]
    assert _expected(free[0].tolist(), eos)[3:] == [eos[0]] * (N - 3)  # row 0 does end early (at step 2)


def test_stop_strings_end_rows_and_are_cut_from_the_text():
    model, args, free = _setup()
    tok = model.tokenizer
    word = tok.decode(free[0, 3:4])
    assert word.strip()
    out = generate(model, *args, max_new_tokens=N, eos_token_id=[tok.eos_token_id], stop=[word])
    row = free[0].tolist()
    end = next(i for i in range(N) if word in tok.decode(row[: i + 1]))
    assert out[0, : end + 1].tolist() == row[: end + 1]
    assert (out[0, end + 1 :] == tok.eos_token_id).all()
    texts = generate_text(model, *args, max_new_tokens=N, eos_token_id=[tok.eos_token_id], stop=word)
    full = tok.decode(row, skip_special_tokens=True)
    assert texts[0] == full[: full.find(word)] and word not in texts[0]
    with pytest.raises(ConfigError, match="stop="):
        generate(model, *args, stop=[""])


def test_sampler_is_transformers_warpers():
    model, args, greedy = _setup()

    def sample(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return generate(model, *args, max_new_tokens=N, eos_token_id=[], do_sample=True, generator=g, **kw)

    assert torch.equal(sample(0, top_p=1e-9), greedy)  # top-p keeps at least the most likely token
    assert torch.equal(sample(0, temperature=0.0), greedy)  # temperature 0 is greedy
    assert torch.equal(sample(1), sample(1)) and not torch.equal(sample(1), sample(2))
    assert not torch.equal(sample(1, temperature=5.0), greedy)
    with pytest.raises(ConfigError, match="top_p"):
        sample(0, top_p=0.0)


def test_sampled_token_follows_the_warped_distribution():
    """One step, many draws: frequencies match softmax(top-p(logits / T)) computed by transformers."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    from softprompt.core.decoding import make_sampler, pick

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(20000, 1)
    sampler = make_sampler(True, 0.7, 0.8)
    draws = pick(logits, sampler, logits[:, :0].long(), torch.Generator().manual_seed(0))
    ref = TopPLogitsWarper(0.8)(None, TemperatureLogitsWarper(0.7)(None, logits[:1])).softmax(-1)[0]
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    torch.testing.assert_close(freq, ref, atol=0.015, rtol=0)
    assert ref[-1] == 0 and freq[-1] == 0  # the tail top-p removes is never drawn


@pytest.mark.parametrize(
    ("family", "limit"),
    [
        ("llama", 128),
        ("gemma2", 128),
        ("gpt2", 96),
        ("bert", 96),
        ("roberta", 96),
        ("bart", 96),
        ("t5", None),
    ],
)
def test_every_backbone_knows_its_context(family, limit):
    assert make_model(family).info.context_length == limit


def test_rope_model_input_past_its_context_is_an_error_in_forward():
    from softprompt.errors import InputTooLong

    model = make_model("llama", ["prompt-tuning"], n=4)
    ids = torch.randint(5, 200, (2, 125))
    model(ids)  # 125 <= 128
    with pytest.raises(
        InputTooLong,
        match=r"125 tokens \+ 4 virtual tokens = 129 positions > the model's 128 \(its context length\)",
    ):
        model(ids, prompts="prompt_tuning")


def test_generation_past_the_context_errors_or_truncates_with_a_warning():
    from softprompt.errors import InputTooLong

    model = make_model("llama", ["prompt-tuning"], n=4)
    ids = torch.randint(5, 200, (2, 120))
    mask = torch.ones_like(ids)
    mask[1, :30] = 0  # row 1 is short (90 tokens): fits
    with pytest.raises(
        InputTooLong, match=r"row 0: 120 tokens \+ 4 virtual tokens \+ 10 new tokens = 134.*truncate=True"
    ):
        generate(model, ids, mask, "prompt_tuning", max_new_tokens=10)
    with pytest.warns(UserWarning, match="oldest 6 tokens"):
        cut = generate(model, ids, mask, "prompt_tuning", max_new_tokens=10, eos_token_id=[], truncate=True)
    alone = generate(model, ids[:1, 6:], None, "prompt_tuning", max_new_tokens=10, eos_token_id=[])
    assert torch.equal(cut[:1], alone)
    rest = generate(model, ids[1:], mask[1:], "prompt_tuning", max_new_tokens=10, eos_token_id=[])
    assert torch.equal(cut[1:], rest)  # the row that fit is untouched
    with pytest.raises(InputTooLong, match="max_new_tokens"):
        generate(model, ids, mask, "prompt_tuning", max_new_tokens=200, truncate=True)


def test_a_row_without_tokens_is_a_clear_error():
    model = make_model("llama", ["prompt-tuning"])
    with pytest.raises(ConfigError, match="row 0 of input_ids has no tokens"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), None, "prompt_tuning")
    ids = torch.randint(5, 200, (2, 3))
    with pytest.raises(ConfigError, match="row 1 of input_ids has no tokens"):
        generate(model, ids, torch.tensor([[1, 1, 1], [0, 0, 0]]))


def test_a_sliding_window_hides_old_virtual_tokens_and_never_a_prefix():
    """The window rule of ``generate`` and the server: virtual input tokens are sequence tokens (the window
    hides them once they are far enough back); a key/value prefix stays visible to every token."""
    from softprompt.core.generation import virtual_tokens_as_prefix

    model = make_model(
        "mistral", ["prompt-tuning", "prefix-tuning"]
    )  # window 6, 2 layers: reach 2 * 5 tokens
    assert not virtual_tokens_as_prefix(model) and virtual_tokens_as_prefix(make_model("llama"))
    x = torch.randint(5, 200, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(x).logits[:, -1]
        virtual = model(x, prompts="prompt_tuning").logits[:, -1]
        prefix = model(x, prompts="prefix_tuning").logits[:, -1]
        early = model(x[:, :4], prompts="prompt_tuning").logits[:, -1]
    torch.testing.assert_close(virtual, base, atol=1e-4, rtol=0)  # 20 tokens later: out of reach
    assert not torch.allclose(early, model(x[:, :4]).logits[:, -1], atol=1e-3)  # within reach they count
    assert not torch.allclose(prefix, base, atol=1e-3)  # the prefix is seen from every position
    new = dict(max_new_tokens=4, eos_token_id=[])
    assert torch.equal(generate(model, x, prompts="prompt_tuning", **new), generate(model, x, **new))
