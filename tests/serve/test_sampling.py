"""Token choice and incremental detokenization: stop strings spanning tokens are never half-emitted."""

import torch

from softprompt.core.decoding import make_sampler
from softprompt.core.decoding import pick as pick_rows
from softprompt.serve.sampling import Detokenizer, top_logprobs
from softprompt.testing.tokenizer import tiny_tokenizer


def feed(stop, text="the movie was good"):
    tok = tiny_tokenizer("causal")
    d, out, stopped = Detokenizer(tok, stop), [], False
    for t in tok(text)["input_ids"]:
        delta, stopped = d.add(t)
        out.append(delta)
        if stopped:
            break
    if not stopped:
        out.append(d.flush())
    return out, stopped


def test_no_stop_concatenates_to_the_decoded_text():
    out, stopped = feed([])
    assert "".join(out) == "the movie was good" and not stopped


def test_stop_spanning_tokens_is_held_back_then_cut():
    out, stopped = feed(["ie wa"])
    assert stopped and "".join(out) == "the mov"
    assert all("ie" not in d for d in out)  # "movie" was never emitted whole


def test_stop_prefix_that_does_not_complete_is_released():
    out, stopped = feed(["ie wx"])
    assert not stopped and "".join(out) == "the movie was good"


def pick(logits, temperature, top_p, generator):
    """One row's token, drawn as the engine draws it (the library's warpers and draw)."""
    sampler = make_sampler(True, temperature, top_p)
    return int(pick_rows(logits[None], sampler, torch.zeros(1, 0, dtype=torch.long), generator)[0])


def test_pick_greedy_top_p_and_seed():
    logits = torch.tensor([0.0, 3.0, 2.9, -5.0])
    assert pick(logits, 0.0, 1.0, None) == 1
    draws = {pick(logits, 1.0, 0.01, torch.Generator().manual_seed(s)) for s in range(20)}
    assert draws == {1}  # top_p this small keeps only the most likely token
    a = [pick(logits, 1.5, 1.0, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert a[0] == a[1]
    lp, top = top_logprobs(logits, 2, 2)
    assert [t for t, _ in top] == [1, 2] and lp == top[1][1] < 0


def test_a_vanishing_temperature_draws_the_greedy_token():
    """Found by schemathesis: temperature 1.4e-45 made logits / T overflow to inf and the draw raised (HTTP 500)."""
    logits = torch.tensor([[1.0, 3.0, -2.0, 2.9], [0.5, -1.0, 0.0, 0.4]])
    for t in (1.401298464324817e-45, 1e-39):
        out = pick_rows(logits, make_sampler(True, t, 1.0), torch.zeros(2, 1, dtype=torch.long), None)
        assert out.tolist() == [1, 0]
