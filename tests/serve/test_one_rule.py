"""One generation rule: a seeded sampled request to the server (engine and HTTP) gives what ``softprompt.generate``
gives with the same seed, for requests of different prompts sampled in one batch; stop strings end and cut a row
where the library ends and cuts it."""

import concurrent.futures as cf

import httpx
import pytest
import torch

from softprompt.core.generation import generate, generate_text

from .test_engine import engine, run  # noqa: F401  (the engine fixture)

JOBS = [  # prompt, text, seed, temperature, top_p
    ("v2", "the movie", 7, 1.0, 0.9),
    ("pt", "i was not", 11, 1.3, 1.0),
    ("base", "a bad film", 3, 0.8, 0.8),
]


def library(model, key, text, n, seed, temperature, top_p, stop=None):
    """(tokens up to the first EOS, text) of ``softprompt.generate`` for one row with a generator seeded ``seed``."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    kw = dict(max_new_tokens=n, do_sample=True, temperature=temperature, top_p=top_p, stop=stop)
    out = generate(model, ids, None, [key], generator=torch.Generator().manual_seed(seed), **kw)[0].tolist()
    (txt,) = generate_text(model, ids, None, [key], generator=torch.Generator().manual_seed(seed), **kw)
    eos = set(
        model.backbone.config.eos_token_id
        if isinstance(model.backbone.config.eos_token_id, list)
        else [model.backbone.config.eos_token_id]
    )
    end = next((i for i, t in enumerate(out) if t in eos), len(out))
    return out[:end], txt


def key_of(store, name):
    return None if name == "base" else store.get(name).key


def reference(eng, n, stops=None):
    with eng.store.lock:
        return [
            library(eng.model, key_of(eng.store, p), t, n, s, temp, tp, None if stops is None else stops[i])
            for i, (p, t, s, temp, tp) in enumerate(JOBS)
        ]


def batch_sizes(eng):
    """Records the rows of every backbone forward (a decode step of the whole running batch included)."""
    seen = []

    def hook(module, args, kwargs):
        x = kwargs.get("inputs_embeds", kwargs.get("input_ids"))
        if x is not None:
            seen.append(x.shape[0])

    return seen, eng.model.backbone.register_forward_pre_hook(hook, with_kwargs=True)


def test_engine_sampling_equals_the_library(engine):  # noqa: F811
    seen, handle = batch_sizes(engine)
    try:
        sinks = [run(engine, p, t, 12, seed=s, temperature=temp, top_p=tp) for p, t, s, temp, tp in JOBS]
        got = [sink.wait()[:2] for sink in sinks]
    finally:
        handle.remove()
    assert max(seen) == len(JOBS)  # the three rows were decoded in one batch
    want = reference(engine, 12)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == [w[1] for w in want]
    assert len({tuple(w[0]) for w in want}) == len(JOBS)  # the rows differ: a mix-up would show


def test_engine_stop_strings_end_where_the_library_ends(engine):  # noqa: F811
    full = reference(engine, 12)
    stops = [[w[1].split()[min(2, len(w[1].split()) - 1)]] if w[1].split() else ["zzz"] for w in full]
    sinks = [
        run(engine, p, t, 12, seed=s, temperature=temp, top_p=tp, stop=stops[i])
        for i, (p, t, s, temp, tp) in enumerate(JOBS)
    ]
    got = [sink.wait() for sink in sinks]
    want = reference(engine, 12, stops)
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] for g in got] == [w[0] for w in want]  # the token that completed the stop is the last one
    cut = [i for i, g in enumerate(got) if g[2]["finish_reason"] == "stop"]
    assert cut and all(stops[i][0] not in got[i][1] for i in cut)


def test_http_sampling_equals_the_library(server):
    def post(job, stop=None):
        p, t, s, temp, tp = job
        body = {"model": p, "prompt": t, "max_tokens": 10, "seed": s, "temperature": temp, "top_p": tp}
        r = httpx.post(server.url + "/v1/completions", json={**body, "stop": stop}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]

    with cf.ThreadPoolExecutor(len(JOBS)) as pool:
        got = list(pool.map(post, JOBS))
    want = reference(server.engine, 10)
    assert got == [w[1] for w in want]
    stops = [[w[1][1:3]] if len(w[1]) > 3 else None for w in want]
    with cf.ThreadPoolExecutor(len(JOBS)) as pool:
        got = list(pool.map(post, JOBS, stops))
    assert got == [w[1] for w in reference(server.engine, 10, stops)]
    assert any(s is not None and len(g) < len(w[1]) for s, g, w in zip(stops, got, want))


@pytest.mark.parametrize("field", ["temperature", "top_p", "max_tokens"])
def test_one_set_of_sampling_defaults(field):
    from softprompt.core.decoding import DEFAULTS
    from softprompt.serve.requests import Completion
    from softprompt.serve.schemas import CompletionBody

    body = CompletionBody(model="base", prompt="x")
    req = Completion(entry=None, sink=print, ids=[1])
    assert getattr(req, field) == getattr(DEFAULTS, field)
    assert getattr(body, field) in (None, getattr(DEFAULTS, field))
