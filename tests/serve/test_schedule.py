"""The scheduler: a long prefill is split into chunks while running rows keep decoding, a joining request starts
within a bounded number of steps, classifications are not held up by completions, and greedy answers stay
equal to the request run alone however the prefill was split."""

import math
import threading

import pytest

from softprompt.core.loading import load_model
from softprompt.serve import Engine, EngineConfig, PromptStore

from .serving import PROMPTS, WORDS, alone, texts

BUDGET = 8  # prompt tokens prefilled per step: every prompt below takes several steps


class Log:
    """Sinks of several requests writing to one ordered log of (request, event type)."""

    def __init__(self):
        self.events, self.lock, self.done = [], threading.Lock(), {}

    def sink(self, name: str):
        self.done[name] = threading.Event()

        def put(event):
            with self.lock:
                self.events.append((name, event))
            if event["type"] in ("done", "error", "scores"):
                self.done[name].set()

        return put

    def wait(self, name: str) -> list[int]:
        assert self.done[name].wait(60), f"{name} did not finish"
        evs = [e for n, e in self.events if n == name]
        if evs[-1]["type"] == "error":
            raise evs[-1]["error"]
        return [e["token"] for e in evs if e["type"] == "token"]

    def mark(self, name: str) -> None:
        with self.lock:
            self.events.append((name, {"type": "mark"}))

    def tokens_of(self, name: str) -> int:
        with self.lock:
            return sum(1 for n, e in self.events if n == name and e["type"] == "token")


@pytest.fixture(scope="module")
def engine(serve_assets):
    model = load_model(serve_assets["model"])
    store = PromptStore(model, serve_assets["prompts"])
    store.load_all()
    eng = Engine(store, EngineConfig(max_rows=4, max_tokens_per_step=BUDGET, max_queue=64)).start()
    eng.eos = frozenset()  # fixed lengths: the decoding row never stops early
    yield eng
    eng.stop()


def long_text(n: int, seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n))


def submit(engine, log, name, prompt, text, max_tokens):
    ids = engine.tok(text)["input_ids"]
    engine.submit(engine.completion(ids, prompt, sink=log.sink(name), max_tokens=max_tokens, temperature=0))
    return ids


def key_of(engine, name):
    return None if name in (None, "base") else engine.store.get(name).key


def expected(engine, prompt, text, max_tokens):
    with engine.store.lock:
        return alone(engine.model, key_of(engine, prompt), text, max_tokens, set())


@pytest.mark.parametrize("prompt", ["prefix", "v2", "pt_long", "ptune", None])
def test_a_long_prefill_is_chunked_while_running_rows_decode(engine, prompt):
    log = Log()
    submit(engine, log, "running", "static", "the movie was", 70)
    while log.tokens_of("running") < 2:  # the first row is decoding
        log.done["running"].wait(0.01)
    text = long_text(40, seed=len(prompt or ""))
    log.mark("submitted")
    ids = submit(engine, log, "long", prompt, text, 4)
    long_tokens = log.wait("long")
    with log.lock:  # the running row's tokens between the long request's submission and its first token
        order = [n for n, e in log.events if e["type"] in ("token", "mark")]
    during = order[order.index("submitted") : order.index("long")].count("running")
    virtual = engine.store.get(prompt).virtual_tokens if prompt else 0
    chunks = math.ceil((len(ids) + (virtual if prompt in ("pt_long", "ptune") else 0)) / BUDGET)
    assert chunks >= 5
    assert chunks - 2 <= during <= chunks + 2  # the running row decoded once per chunk, no more steps
    assert long_tokens == expected(engine, prompt, text, 4)
    assert log.wait("running") == expected(engine, "static", "the movie was", 70)


def test_chunked_prefills_of_mixed_prompts_equal_each_request_alone(engine):
    names = [*PROMPTS, "run", None]
    jobs = [(names[i % len(names)], long_text(6 + (i * 11) % 30, i), 2 + i % 5) for i in range(12)]
    log = Log()
    for i, (prompt, text, m) in enumerate(jobs):
        submit(engine, log, f"r{i}", prompt, text, m)
    for i, (prompt, text, m) in enumerate(jobs):
        assert log.wait(f"r{i}") == expected(engine, prompt, text, m), (prompt, text)


def test_a_classification_finishes_while_a_long_completion_runs(engine):
    log = Log()
    submit(engine, log, "long", "prefix", "the movie", 90)
    while log.tokens_of("long") < 1:
        log.done["long"].wait(0.01)
    engine.submit(engine.classification(texts(3, seed=5), "run", sink=log.sink("classify")))
    assert log.done["classify"].wait(60)
    assert not log.done["long"].is_set()  # scored while the completion was still decoding
    assert log.tokens_of("long") < 90
    scores = [e for n, e in log.events if n == "classify"][-1]["scores"]
    assert len(scores) == 3 and all(len(s) == 2 for s in scores)
    log.wait("long")
