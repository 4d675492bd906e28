"""Every error of the API, one test each: OpenAI's shape, the status code, the field or limit named; through the
openai client's error classes where it applies. The server survives all of them."""

import threading
import time

import httpx
import openai
import pytest

from .serving import start


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def test_malformed_json_is_400(server):
    r = httpx.post(
        server.url + "/v1/completions",
        content=b'{"model": "pt", "prompt": ',
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in error_of(r, 400)["message"]
    r = httpx.post(server.url + "/v1/completions", json=["a list"])
    assert "JSON object" in error_of(r, 400)["message"]


def test_wrong_types_are_422_naming_the_field(server):
    with pytest.raises(openai.UnprocessableEntityError) as e:
        server.client().completions.create(model="pt", prompt="the movie", max_tokens="many")
    assert e.value.body["param"] == "max_tokens"
    r = httpx.post(server.url + "/v1/completions", json={"model": "pt", "prompt": "x", "logprobs": 6})
    assert error_of(r, 422)["param"] == "logprobs"
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "x"})
    assert error_of(r, 422)["param"] == "model"


def test_unknown_prompt_is_404_never_base(server):
    with pytest.raises(openai.NotFoundError) as e:
        server.client().completions.create(model="nope", prompt="the movie", max_tokens=2)
    assert e.value.body["param"] == "model" and "'nope'" in e.value.body["message"]
    r = httpx.post(server.url + "/v1/classify", json={"model": "nope", "input": "x"})
    assert error_of(r, 404)["code"] == "model_not_found"
    assert error_of(httpx.delete(server.url + "/v1/prompts/nope"), 404)["param"] == "model"


def test_deleting_base_is_409_and_says_why(server):
    err = error_of(httpx.delete(server.url + "/v1/prompts/base"), 409)
    assert err["code"] == "base_not_removable" and err["param"] == "name"
    assert "plain backbone" in err["message"] and "cannot be deleted" in err["message"]
    assert "no prompt named" not in err["message"]  # never "not served" beside a list that holds it
    assert "base" in {m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]}


def test_input_too_long_is_400_naming_the_limit(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().completions.create(model="pt_long", prompt="the " * 100, max_tokens=30)
    assert e.value.body["code"] == "context_length_exceeded" and "128 positions" in e.value.body["message"]


def test_max_tokens_over_the_limit_is_400(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().completions.create(model="pt", prompt="the movie", max_tokens=65)
    assert e.value.body["param"] == "max_tokens" and "64]" in e.value.body["message"]


def test_body_over_the_size_limit_is_413(server):
    r = httpx.post(server.url + "/v1/completions", json={"model": "pt", "prompt": "a " * 600_000})
    assert "limit is 1048576" in error_of(r, 413)["message"]


def test_bad_prompt_paths_and_names_are_400(server):
    for body, param in [
        ({"name": "x", "path": "../model"}, "path"),
        ({"name": "x", "path": "nothing"}, "path"),
        ({"name": "pt", "path": "pt"}, "name"),
        ({"name": "base", "path": "pt"}, "name"),
    ]:
        err = error_of(httpx.post(server.url + "/v1/prompts", json=body), 400)
        assert err["param"] == param, (body, err)
    bad = httpx.post(
        server.url + "/v1/prompts", json={"name": "bad name!", "path": "pt"}
    )  # the schema's pattern
    assert error_of(bad, 422)["param"] == "name"
    assert (
        "outside"
        in error_of(httpx.post(server.url + "/v1/prompts", json={"name": "x", "path": "/etc"}), 400)[
            "message"
        ]
    )


def test_empty_and_out_of_vocabulary_prompts_are_400(server):
    for prompt, fragment in [("", "empty"), ([9999], "token id 9999")]:
        r = httpx.post(server.url + "/v1/completions", json={"model": "base", "prompt": prompt})
        assert fragment in error_of(r, 400)["message"]
    for prompt in [[], [[]]]:  # the schema's minItems (FastAPI refuses them before the engine)
        r = httpx.post(server.url + "/v1/completions", json={"model": "base", "prompt": prompt})
        assert error_of(r, 422)["param"].startswith("prompt")
    r = httpx.post(server.url + "/v1/classify", json={"model": "pt", "input": "x"})
    assert "no classification task" in error_of(r, 400)["message"]


@pytest.fixture(scope="module")
def tight(serve_assets):
    """One row, one queued request, 0.6 s per request, a slow forward (20 ms), and an API key."""
    live = start(
        serve_assets,
        hook=lambda m, a: time.sleep(0.02),
        api_key="secret",
        max_rows=1,
        max_queue=1,
        request_timeout=0.6,
        max_new_tokens=100,
    )
    yield live
    live.close()
    live.engine.stop()


def test_api_key_is_required_401(tight, monkeypatch):
    with pytest.raises(openai.AuthenticationError):
        tight.client(api_key="wrong").models.list()
    assert error_of(httpx.get(tight.url + "/v1/models"), 401)["code"] == "invalid_api_key"
    assert httpx.get(tight.url + "/health").status_code == 200  # health stays open
    assert tight.client(api_key="secret").models.list().data[0].id == "base"
    from softprompt.serve.server import build_app

    monkeypatch.setenv("SOFTPROMPT_API_KEY", "from-env")
    app = build_app(tight.engine)
    import asyncio

    async def probe(key):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return (await c.get("/v1/models", headers={"authorization": f"Bearer {key}"})).status_code

    assert asyncio.run(probe("nope")) == 401 and asyncio.run(probe("from-env")) == 200


def test_queue_full_is_429_with_retry_after(tight):
    body = {"model": "base", "prompt": "the movie", "max_tokens": 20, "temperature": 0}
    auth = {"authorization": "Bearer secret"}
    out = []

    def post():
        out.append(httpx.post(tight.url + "/v1/completions", json=body, headers=auth, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    full = [r for r in out if r.status_code == 429]
    assert full and full[0].headers["retry-after"] == "1"
    assert "max_queue=1" in error_of(full[0], 429)["message"]
    with pytest.raises(openai.RateLimitError):
        c = tight.client(api_key="secret")
        with cf_pool(3) as pool:
            list(pool.map(lambda _: c.completions.create(model="base", prompt="the", max_tokens=5), range(3)))


def cf_pool(n):
    import concurrent.futures as cf

    return cf.ThreadPoolExecutor(n)


def test_request_over_its_time_limit_is_504(tight):
    time.sleep(1.0)  # the previous test's requests are gone
    with pytest.raises(openai.InternalServerError) as e:
        tight.client(api_key="secret").completions.create(
            model="base",
            prompt="the movie",
            max_tokens=90,
            temperature=0,  # greedy: no early EOS by chance
        )
    assert e.value.status_code == 504 and "request_timeout=0.6" in e.value.body["message"]


def test_disconnect_frees_the_slot(tight):
    time.sleep(1.0)
    body = {"model": "base", "prompt": "the movie", "max_tokens": 90, "stream": True, "temperature": 0}
    with httpx.stream(
        "POST", tight.url + "/v1/completions", json=body, headers={"authorization": "Bearer secret"}
    ) as r:
        next(r.iter_lines())  # the first token arrived; hang up
    deadline = time.monotonic() + 2
    while tight.engine.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tight.engine.stats() == {"waiting": 0, "prefilling": 0, "running": 0}
    assert "Cancelled" in httpx.get(tight.url + "/metrics").text


def test_chat_without_a_template_is_400(tight, monkeypatch):
    monkeypatch.setattr(tight.engine.tok, "chat_template", None)
    with pytest.raises(openai.BadRequestError) as e:
        tight.client(api_key="secret").chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.body["code"] == "no_chat_template"


def test_disconnect_frees_the_slot_without_streaming(serve_assets):
    live = start(serve_assets, hook=lambda m, a: time.sleep(0.02), max_rows=1, request_timeout=30)
    try:
        body = {"model": "base", "prompt": "the movie", "max_tokens": 120, "temperature": 0}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(live.url + "/v1/completions", json=body, timeout=0.3)  # hangs up after 0.3 s
        deadline = time.monotonic() + 1.2
        while live.engine.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.engine.stats() == {
            "waiting": 0,
            "prefilling": 0,
            "running": 0,
        }  # long before its 120 tokens (> 2.4 s)
        metrics = httpx.get(live.url + "/metrics").text
        assert 'softprompt_requests_total{kind="completion",prompt="base",status="Cancelled"} 1.0' in metrics
    finally:
        live.close()
        live.engine.stop()


def test_seed_outside_what_a_generator_takes_is_422(server):
    """Found by schemathesis: seed -9223372036854775809 was an HTTP 500 (torch's manual_seed overflowed)."""
    for seed in (-(2**63) - 1, 2**64):
        body = {"model": "base", "prompt": "the movie", "max_tokens": 2, "seed": seed}
        assert error_of(httpx.post(server.url + "/v1/completions", json=body), 422)["param"] == "seed"
    body = {"model": "base", "prompt": "the movie", "max_tokens": 2, "temperature": 0.5, "seed": 2**64 - 1}
    assert httpx.post(server.url + "/v1/completions", json=body).status_code == 200
