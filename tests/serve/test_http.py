"""The HTTP API on a real uvicorn server with the official openai client: mixed concurrent requests equal
single requests, load, streaming, prompts added and removed under load, classify, models, metrics."""

import asyncio
import concurrent.futures as cf
import json
import time

import httpx
import pytest

from .serving import PROMPTS, texts

NAMES = [*PROMPTS, "run", "base"]


def complete(client, name, text, max_tokens=8, **kw):
    r = client.completions.create(model=name, prompt=text, max_tokens=max_tokens, temperature=0, **kw)
    return r.choices[0].text, r.choices[0].finish_reason, r.usage.completion_tokens


def test_models_lists_every_prompt_with_method(server):
    data = {m.id: m for m in server.client().models.list().data}
    assert set(data) == set(NAMES)
    assert data["prefix"].model_extra["method"] == "prefix-tuning"
    assert data["static"].model_extra["method"] == "prompt-tuning"  # ejected: its source method
    assert data["pt_long"].model_extra["virtual_tokens"] == 9
    assert data["run"].model_extra["classify"] == ["positive", "negative"]
    assert {m.model_extra["parent"] for m in data.values()} == {"tiny-llama"}


def test_concurrent_mixed_prompts_equal_single_requests(server):
    client = server.client()
    jobs = [(NAMES[i % len(NAMES)], t, 2 + i % 7) for i, t in enumerate(texts(27, seed=5))]
    single = [complete(client, *j) for j in jobs]  # one at a time
    with cf.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda j: complete(client, *j), jobs))
    assert together == single
    assert sum(bool(s[0]) for s in single) > len(single) // 2
    assert {s[2] for s in single} != {0}


def test_200_concurrent_requests_no_errors_same_answers(server):
    jobs = [(NAMES[i % 8], t) for i, t in enumerate(texts(25, seed=9) * 8)]
    client = server.client()
    single = {}
    for name, text in set(jobs):
        single[name, text] = complete(client, name, text, 6)[0]

    async def fire():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:

            async def one(name, text):
                body = {"model": name, "prompt": text, "max_tokens": 6, "temperature": 0}
                r = await http.post("/v1/completions", json=body)
                return r.status_code, r.json()

            return await asyncio.gather(*(one(*j) for j in jobs))

    rss0 = _rss_mb()
    t0 = time.monotonic()
    out = asyncio.run(fire())
    assert time.monotonic() - t0 < 60
    assert [code for code, _ in out] == [200] * 200
    assert [body["choices"][0]["text"] for _, body in out] == [single[j] for j in jobs]
    assert _rss_mb() - rss0 < 300  # bounded (MB)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_streaming_chunks_concatenate_to_the_completion(server):
    client = server.client()
    for name, text in [("prefix", "the movie was"), ("ptune", "i is a"), ("base", "this film")]:
        want, reason, _ = complete(client, name, text, 12)
        chunks = list(
            client.completions.create(model=name, prompt=text, max_tokens=12, temperature=0, stream=True)
        )
        assert "".join(c.choices[0].text for c in chunks if c.choices) == want
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reason
        msgs = [{"role": "user", "content": text}]
        chat = client.chat.completions.create(model=name, messages=msgs, max_tokens=10, temperature=0)
        stream = client.chat.completions.create(
            model=name, messages=msgs, max_tokens=10, temperature=0, stream=True
        )
        got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert got == chat.choices[0].message.content
        assert chat.usage.completion_tokens >= 1


def test_stream_ends_with_done_and_usage(server):
    body = {
        "model": "v2",
        "prompt": "the movie",
        "max_tokens": 5,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=30) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    usage = json.loads(lines[-2][6:])["usage"]
    assert usage["completion_tokens"] >= 1 and usage["prompt_tokens"] == 2


def test_logprobs_top_k(server):
    r = server.client().completions.create(
        model="pt", prompt="the movie", max_tokens=4, temperature=0, logprobs=3
    )
    lp = r.choices[0].logprobs
    assert len(lp.token_logprobs) == r.usage.completion_tokens
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and chosen == pytest.approx(max(top.values()))  # greedy picks the most likely


def test_add_and_remove_prompts_under_load(server, serve_assets):
    client = server.client()
    ref = complete(client, "pt", "the film is", 6)
    keep = [(n, t) for n in ("prefix", "v2", "base") for t in texts(10, seed=2)]
    keep_single = {j: complete(client, *j, 6) for j in set(keep)}
    # a long request on the prompt about to be removed: it finishes after the DELETE
    with cf.ThreadPoolExecutor(24) as pool:
        long = pool.submit(complete, client, "ptune", "the movie was good", 40)
        load = [pool.submit(complete, client, *j, 6) for j in keep]
        time.sleep(0.05)
        assert httpx.delete(server.url + "/v1/prompts/ptune").json()["deleted"] is True
        added = httpx.post(server.url + "/v1/prompts", json={"name": "pt_copy", "path": "pt"})
        assert added.status_code == 201 and added.json()["method"] == "prompt-tuning"
        assert complete(client, "pt_copy", "the film is", 6) == ref
        import openai

        with pytest.raises(openai.NotFoundError, match="ptune"):
            complete(client, "ptune", "the movie", 4)
        assert [f.result() for f in load] == [keep_single[j] for j in keep]
        _, reason, n = long.result()
    assert reason == "length" and n == 40
    assert httpx.post(server.url + "/v1/prompts", json={"name": "ptune", "path": "ptune"}).status_code == 201
    httpx.delete(server.url + "/v1/prompts/pt_copy")


def test_classify_batches_and_scores(server):
    inputs = texts(6, seed=4)
    r = httpx.post(server.url + "/v1/classify", json={"model": "run", "input": inputs}, timeout=30).json()
    assert [d["index"] for d in r["data"]] == list(range(6))
    for d in r["data"]:
        assert set(d["scores"]) == {"positive", "negative"}
        assert d["label"] == max(d["scores"], key=d["scores"].get)
    one = httpx.post(server.url + "/v1/classify", json={"model": "run", "input": inputs[2]}).json()
    assert one["data"][0]["scores"] == pytest.approx(r["data"][2]["scores"], abs=1e-5)


def test_health_and_metrics(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    complete(server.client(), "v2", "the movie", 3)
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "softprompt_queue_depth",
        "softprompt_running_rows",
        "softprompt_batch_size_bucket",
        "softprompt_request_latency_seconds_bucket",
        "softprompt_time_to_first_token_seconds_count",
        "softprompt_tokens_per_second",
    ):
        assert name in text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('softprompt_requests_total{kind="completion",prompt="v2"')
    )
    assert float(line.split()[-1]) >= 1
