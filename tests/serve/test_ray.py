"""The Ray Serve deployment: 2 local CPU replicas answer exactly like the single-process server."""

import concurrent.futures as cf
import socket
import time

import httpx
import pytest

from .serving import PROMPTS, texts

ray = pytest.importorskip("ray", reason="Ray Serve is the optional extra softprompt[ray]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_url(serve_assets):
    import ray

    from softprompt.serve import EngineConfig, ray_app

    port = free_port()
    for attempt in (
        1,
        2,
        3,
    ):  # Ray's HTTP proxy must start within 60 s; a loaded 2-core machine can miss that
        try:
            ray_app.start(
                serve_assets["model"],
                serve_assets["prompts"],
                port=port,
                replicas=2,
                device="cpu",
                config=EngineConfig(max_rows=8, max_new_tokens=64),
                num_cpus=0.5,
                name="softprompt-test",
            )
            break
        except ray.exceptions.RayError:
            ray_app.stop()
            if attempt == 3:
                raise
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "Ray Serve did not come up"
        time.sleep(0.5)
    yield url
    ray_app.stop()


def test_two_replicas_answer_like_one_process(ray_url, server):
    from openai import OpenAI

    names = [*PROMPTS, "run", "base"]
    jobs = [(names[i % len(names)], t) for i, t in enumerate(texts(18, seed=11))]

    def ask(base_url, name, text):
        c = OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0, timeout=60)
        return c.completions.create(model=name, prompt=text, max_tokens=6, temperature=0).choices[0].text

    with cf.ThreadPoolExecutor(9) as pool:
        remote = list(pool.map(lambda j: ask(ray_url, *j), jobs))
    local = [ask(server.url, *j) for j in jobs]
    assert remote == local
    pids = {httpx.get(ray_url + "/health").json()["pid"] for _ in range(30)}
    assert len(pids) == 2  # both replicas answered
    r = httpx.post(ray_url + "/v1/completions", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    with httpx.stream(
        "POST",
        ray_url + "/v1/completions",
        json={"model": "v2", "prompt": "the movie", "max_tokens": 4, "temperature": 0, "stream": True},
    ) as s:
        lines = [x for x in s.iter_lines() if x]
    assert lines[-1] == "data: [DONE]"
