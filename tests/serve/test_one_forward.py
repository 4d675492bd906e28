"""One forward per step: the running rows' decode and the joining rows' prefill chunk run in one backbone call
(``RowBatch.step``), each row's logits equal to the row run alone; and a joining request starts within the
stated bound of steps (``serve.prefill``)."""

import threading

import pytest
import torch

from softprompt.core.loading import load_model
from softprompt.serve import Engine, EngineConfig, PromptStore
from softprompt.serve.batch import RowBatch

from .test_schedule import Log, long_text, submit

RUNNING = [("prefix", "the movie was good"), ("pt", "it is"), (None, "a bad film i think"), ("v2", "this")]
JOINING = [("ptune", long_text(11, 1)), ("static", long_text(5, 2)), ("prefix", long_text(8, 3))]


@pytest.fixture(scope="module")
def store(serve_assets):
    model = load_model(serve_assets["model"])
    store = PromptStore(model, serve_assets["prompts"])
    store.load_all()
    return store


def rows_of(store, jobs):
    keys = [None if p is None else store.get(p).key for p, _ in jobs]
    overrides = {
        k: store.get(p).prefix for k, (p, _) in zip(keys, jobs) if p and store.get(p).prefix is not None
    }
    return [store.model.tokenizer(t)["input_ids"] for _, t in jobs], keys, overrides


def alone_logits(store, prompt, text, then: int | None) -> torch.Tensor:
    """Row ``text`` alone: its prefill's next-token logits, or (``then``) the logits after feeding token ``then``."""
    batch = RowBatch(store.model)
    ids, keys, overrides = rows_of(store, [(prompt, text)])
    logits = batch.prefill(ids, keys, overrides)
    return logits[0] if then is None else batch.decode(torch.tensor([then]))[0]


@torch.no_grad()
def test_a_step_of_decode_rows_and_a_prefill_chunk_is_one_forward_equal_to_each_row_alone(store):
    batch = RowBatch(store.model)
    assert batch.packs  # a causal Llama without a window: the engine takes this path
    ids, keys, overrides = rows_of(store, RUNNING)
    first = batch.prefill(ids, keys, overrides).argmax(-1)  # the running rows' first tokens
    filling = batch.filling(*rows_of(store, JOINING))
    calls = []
    hook = store.model.backbone.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        dec0, fill = batch.step(first, filling, 4)  # 3 rows x 4 columns: not the last chunk
        assert len(calls) == 1 and fill is None and not filling.finished
        nxt = dec0.argmax(-1)
        while not filling.finished:  # decode rows keep decoding while the chunks run, one forward each
            dec, fill = batch.step(nxt, filling, 4)
            nxt = dec.argmax(-1)
    finally:
        hook.remove()
    assert len(calls) == -(-filling.width // 4)  # one forward per step
    for i, (prompt, text) in enumerate(RUNNING):
        torch.testing.assert_close(
            dec0[i], alone_logits(store, prompt, text, int(first[i])), atol=1e-4, rtol=0
        )
    assert fill is not None and fill.shape[0] == len(JOINING)
    for i, (prompt, text) in enumerate(JOINING):
        torch.testing.assert_close(fill[i], alone_logits(store, prompt, text, None), atol=1e-4, rtol=0)


@torch.no_grad()
def test_a_packed_chunk_without_running_rows_equals_the_whole_prefill(store):
    batch = RowBatch(store.model)
    filling = batch.filling(*rows_of(store, JOINING))
    fill = None
    while not filling.finished:
        dec, fill = batch.step(None, filling, 5)
        assert dec is None
    whole = RowBatch(store.model).prefill(*rows_of(store, JOINING))
    assert fill is not None
    torch.testing.assert_close(fill, whole, atol=1e-4, rtol=0)


def test_a_joining_request_starts_within_the_stated_steps(store):
    """Budget 8 tokens per step, 6-token inputs: each request is a group of its own (one step each), so the
    i-th of the requests queued together has its first token within i + 1 steps (+ 1: the step under way when
    they were queued), counted as the running row's tokens."""
    eng = Engine(store, EngineConfig(max_rows=8, max_tokens_per_step=8, max_queue=64)).start()
    eng.eos = frozenset()
    try:
        log = Log()
        submit(eng, log, "running", "static", "the movie was", 60)
        while log.tokens_of("running") < 2:
            log.done["running"].wait(0.01)
        log.mark("submitted")
        names = [f"q{i}" for i in range(5)]
        with eng._cond:  # queued in one go: the scheduler sees all of them at its next step
            for i, name in enumerate(names):
                ids = submit(eng, log, name, "pt", long_text(6, i + 4), 2)
                assert len(ids) == 6
        for name in names:
            log.wait(name)
        with log.lock:
            order = [n for n, e in log.events if e["type"] in ("token", "mark")]
        for i, name in enumerate(names):
            steps = order[order.index("submitted") : order.index(name)].count("running")
            assert steps <= i + 2, (name, steps)
        log.wait("running")
    finally:
        eng.stop()


def test_the_engine_joins_in_one_forward_per_step(store):
    """While a long prefill is chunked under a decoding row, every step is one backbone call."""
    eng = Engine(store, EngineConfig(max_rows=4, max_tokens_per_step=8, max_queue=64)).start()
    eng.eos = frozenset()
    calls, lock = [], threading.Lock()

    def count(module, args, kwargs):
        with lock:
            calls.append(kwargs["inputs_embeds"].shape[:2] if "inputs_embeds" in kwargs else None)

    try:
        log = Log()
        submit(eng, log, "running", "static", "the movie was", 40)
        while log.tokens_of("running") < 2:
            log.done["running"].wait(0.01)
        hook = store.model.backbone.register_forward_pre_hook(count, with_kwargs=True)
        before = log.tokens_of("running")
        submit(eng, log, "long", "pt", long_text(30, 9), 2)
        log.wait("long")
        hook.remove()
        steps = log.tokens_of("running") - before
        assert len(calls) <= steps + 1  # one forward per step (the last one may be counted without its token)
        assert any(c is not None and c[0] == 1 and c[1] > 1 for c in calls)  # packed: one row of tokens
        log.wait("running")
    finally:
        eng.stop()


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_other_causal_families_pack_and_equal_the_library(family):
    """Qwen2 (rotary) and GPT-2 (learned positions, fused qkv) take the one-forward path too: 16 requests over
    4 methods + base, 4 rows at a time, rows joining while others decode, each equal to the library's answer."""
    from .test_backbones import jobs, library, served
    from .test_backbones import submit as submit_one

    engine = served(family)
    try:
        assert engine._batch.packs
        work = jobs(16, seed=7)
        sinks = [submit_one(engine, *job) for job in work]
        got = [s.wait()[0] for s in sinks]
        for job, toks in zip(work, got):
            assert toks == library(engine, *job), job
        assert len({tuple(g) for g in got}) > len(got) // 2
    finally:
        engine.stop()
