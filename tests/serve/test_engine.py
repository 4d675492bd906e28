"""The engine without HTTP: every greedy row equals the request run alone, whatever it was batched with and
whenever it joined; prompt versions; classification; limits."""

import threading

import pytest
import torch

from softprompt.core.loading import load_model
from softprompt.errors import ConfigError, InputTooLong
from softprompt.serve import Engine, EngineConfig, PromptStore
from softprompt.serve.refusals import QueueFull, UnknownPrompt

from .serving import PROMPTS, alone, texts

NAMES = [*PROMPTS, "run", "base"]


class Collector:
    """A sink gathering one request's events; ``wait`` returns (tokens, text, done event)."""

    def __init__(self):
        self.events, self.done = [], threading.Event()

    def __call__(self, event):
        self.events.append(event)
        if event["type"] in ("done", "error", "scores"):
            self.done.set()

    def wait(self, timeout=30):
        assert self.done.wait(timeout), "request did not finish"
        last = self.events[-1]
        if last["type"] == "error":
            raise last["error"]
        toks = [e["token"] for e in self.events if e["type"] == "token"]
        return toks, "".join(e["text"] for e in self.events if e["type"] == "token"), last


@pytest.fixture(scope="module")
def engine(serve_assets):
    model = load_model(serve_assets["model"])
    store = PromptStore(model, serve_assets["prompts"])
    assert sorted(store.load_all()) == sorted(n for n in NAMES if n != "base")
    eng = Engine(store, EngineConfig(max_rows=6, max_tokens_per_step=24, max_queue=64)).start()
    yield eng
    eng.stop()


def run(engine, prompt, text, max_tokens=8, **params):
    """Submit one completion (greedy unless ``params`` set a temperature: the default one samples)."""
    params.setdefault("temperature", 0.0)
    sink = Collector()
    ids = engine.tok(text)["input_ids"]
    engine.submit(engine.completion(ids, prompt, sink=sink, max_tokens=max_tokens, **params))
    return sink


def key_of(engine, name):
    return None if name == "base" else engine.store.get(name).key


def test_mixed_batches_equal_each_request_alone(engine):
    """40 requests over 9 prompts (8 + base), max 6 rows: rows join and leave between steps."""
    jobs = [(NAMES[i % len(NAMES)], t, 3 + (i * 5) % 9) for i, t in enumerate(texts(40, seed=1))]
    sinks = [run(engine, n, t, m) for n, t, m in jobs]  # queued at once: continuous batching does the rest
    got = [s.wait()[0] for s in sinks]
    for (name, text, m), toks in zip(jobs, got):
        with engine.store.lock:
            want = alone(engine.model, key_of(engine, name), text, m, engine.eos)
        assert toks == want, (name, text)
    assert any(len(set(g)) > 1 for g in got)


def test_prompts_change_the_output(engine):
    text = "the movie was"
    outs = {n: run(engine, n, text, 6).wait()[0] for n in NAMES if n != "hard"}
    assert len({tuple(v) for v in outs.values()}) >= len(outs) - 1  # prompts differ from base and each other


def test_unknown_prompt_and_limits(engine):
    with pytest.raises(UnknownPrompt, match="nope"):
        engine.completion([5], "nope", sink=Collector(), max_tokens=2)
    with pytest.raises(ConfigError, match="max_tokens"):
        engine.completion([5], "pt", sink=Collector(), max_tokens=10_000)
    with pytest.raises(InputTooLong, match="128 positions"):
        engine.completion([5] * 120, "pt", sink=Collector(), max_tokens=10)


def test_queue_is_bounded(serve_assets):
    model = load_model(serve_assets["model"])
    eng = Engine(PromptStore(model), EngineConfig(max_queue=2))  # not started: nothing leaves the queue
    for _ in range(2):
        eng.submit(eng.completion([5, 6], None, sink=Collector(), max_tokens=2))
    with pytest.raises(QueueFull, match="max_queue=2"):
        eng.submit(eng.completion([5, 6], None, sink=Collector(), max_tokens=2))


def test_replaced_prompt_never_serves_stale_keys(engine, serve_assets):
    text, before = "the film is", run(engine, "pt", "the film is", 6).wait()[0]
    old_key = engine.store.get("pt").key
    engine.store.remove("pt")
    engine.store.add("pt", f"{serve_assets['prompts']}/pt_long")  # same name, other tensors
    try:
        after = run(engine, "pt", text, 6).wait()[0]
        assert old_key not in engine.model.bank  # the removed version left the bank once idle
        with engine.store.lock:
            assert after == alone(engine.model, engine.store.get("pt").key, text, 6, engine.eos)
        assert after != before
    finally:
        engine.store.remove("pt")
        engine.store.add("pt", f"{serve_assets['prompts']}/pt")
    assert run(engine, "pt", text, 6).wait()[0] == before


def test_classification_matches_the_task(engine):
    from softprompt.serve import tasks

    inputs = texts(5, seed=3)
    sinks = [Collector() for _ in inputs]
    for s, t in zip(sinks, inputs):
        engine.submit(engine.classification([t], "run", sink=s))
    got = torch.tensor([s.wait()[2]["scores"][0] for s in sinks])
    entry = engine.store.get("run")
    with engine.store.lock:
        want = tasks.scores(engine.model, entry, inputs)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert entry.labels == ["positive", "negative"]
    with pytest.raises(ConfigError, match="no classification task"):
        engine.classification(["x"], "pt", sink=Collector())


def test_sampling_is_seeded_and_stop_strings_cut(engine):
    a = run(engine, "v2", "the movie", 8, temperature=1.0, top_p=0.9, seed=7).wait()[0]
    b = run(engine, "v2", "the movie", 8, temperature=1.0, top_p=0.9, seed=7).wait()[0]
    assert a == b
    _, full, _ = run(engine, "base", "the movie", 8).wait()
    words = full.split()
    if len(words) >= 3:
        _, cut, done = run(engine, "base", "the movie", 8, stop=[words[2]]).wait()
        assert done["finish_reason"] == "stop" and words[2] not in cut and full.startswith(cut)
