"""The load benchmark's open-loop mode (bench/serve_open.py): the arrival schedule, the runner's bounds, and one
tiny end-to-end run through a real server on the tiny test model (no figure is timed)."""

import asyncio
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from serve_load import bench_load, table
from serve_open import arrival_times, in_flight, run_open


def test_arrivals_are_seeded_poisson_times():
    a = arrival_times(4.0, 50, 1000.0, seed=3)
    assert a == arrival_times(4.0, 50, 1000.0, seed=3)  # deterministic with a seed
    assert a != arrival_times(4.0, 50, 1000.0, seed=4)
    assert a[0] == 0.0 and a == sorted(a) and len(set(a)) == 50
    gaps = [y - x for x, y in zip(arrival_times(4.0, 20001, 1e9), arrival_times(4.0, 20001, 1e9)[1:])]
    assert statistics.mean(gaps) == pytest.approx(0.25, rel=0.03)  # rate 4/s: mean gap 1/4 s
    assert statistics.stdev(gaps) == pytest.approx(0.25, rel=0.05)  # exponential: sd = mean


def test_arrivals_are_bounded_by_count_and_time():
    assert len(arrival_times(100.0, 7, 1000.0)) == 7
    cut = arrival_times(2.0, 10_000, 5.0)
    assert 0 < len(cut) < 30 and max(cut) < 5.0  # ~10 arrivals in 5 s at 2/s, none at or after the limit
    for bad in ((0.0, 5, 1.0), (1.0, 0, 1.0), (1.0, 5, 0.0)):
        with pytest.raises(ValueError, match="open-loop arrivals need"):
            arrival_times(*bad)


def test_in_flight_counts_overlaps():
    assert in_flight([(0, 1), (0.5, 2), (1.5, 3), (2.5, 4)]) == 2
    assert in_flight([(0, 1), (1, 2)]) == 1  # one ends as the next starts
    assert in_flight([(0, 5)] * 3) == 3


def test_run_open_sends_without_waiting_and_stops_at_its_limit():
    sent: list[float] = []

    async def send(i):
        sent.append(time.perf_counter())
        await asyncio.sleep(60 if i == 2 else 0.05)  # request 2 never finishes within the limit
        return 0.01 * (i + 1), 3

    t = time.perf_counter()
    raw = asyncio.run(run_open(send, [0.0, 0.01, 0.02, 0.03], limit_s=0.3))
    assert time.perf_counter() - t < 5
    assert (raw["sent"], raw["finished"], raw["unfinished"], raw["tokens"]) == (4, 3, 1, 9)
    assert sorted(raw["ttft"]) == pytest.approx([0.01, 0.02, 0.04])
    assert max(sent) - min(sent) < 0.045  # all four sent before any answered: open loop
    assert raw["max_in_flight"] == 3  # 2 never ended, so it is not among the spans
    assert raw["sent_rate_rps"] == pytest.approx(3 / 0.03)


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from softprompt.core.loading import load_model
    from softprompt.methods import make_config
    from softprompt.serve import Engine, EngineConfig, PromptStore
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(path)
    tiny_tokenizer("causal").save_pretrained(path)
    model = load_model(str(path), device="cpu")
    store = PromptStore(model)
    for i in range(8):  # the benchmark's prompts p0..p7
        model.add_prompt(f"p{i}", make_config("prompt-tuning", num_virtual_tokens=2), seed=i)
        store.adopt(f"p{i}")
    eng = Engine(store, EngineConfig(max_rows=8, max_queue=64, max_new_tokens=8)).start()
    eng.eos = frozenset()  # every request makes exactly its max_tokens
    yield eng, model.tokenizer
    eng.stop()


def test_open_loop_end_to_end_on_the_tiny_model(tiny_engine):
    eng, tok = tiny_engine

    def inputs(tok, n, words):
        return [tok("the movie was good and it is not bad")["input_ids"] for _ in range(n)]

    out = bench_load(
        eng,
        tok,
        inputs,
        clients=[1],
        shapes=["short"],
        reps=2,
        new=2,
        long_tokens=8,
        per_client={"short": 1},
        arrivals=("burst", "rate"),
        rates=(40.0,),
        requests=6,
        limit_s=60.0,
    )
    row = out["short/rate"]["40"]
    assert (row["requests_per_run"], row["finished"], row["unfinished"]) == (6, 6, 0)
    assert [r["seed"] for r in row["runs"]] == [0, 1]
    for r in row["runs"]:
        assert r["without_text"] == 0
        assert r["tokens_per_s"] * r["wall_s"] == pytest.approx(12)  # 6 requests x 2 tokens
        assert r["achieved_rate_rps"] == pytest.approx(6 / r["wall_s"])
        assert 0 < r["ttft_p50_s"] <= r["ttft_p95_s"] < r["wall_s"]
    assert out["short"]["1"]["requests_per_run"] == 8  # the 1-client baseline of the same invocation
    ratio = out["goal_short_rate"]["40"]["ratio"]
    assert ratio == pytest.approx(row["ttft_p95_s"] / out["short"]["1"]["ttft_p95_s"])
    md = table(out)
    assert "| short | 40 |" in md and "Open loop: (open loop, Poisson arrivals at 40 requests/s" in md
