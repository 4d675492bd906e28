"""``--engine vllm``: input-level prompts as vLLM ``prompt_embeds``; deep prompts refused; vLLM missing refused.

Most tests run without vLLM: the front talks to a stand-in server (vllm_fake.py) that decodes greedily from the
embeddings it is sent. The test against a real vLLM server runs only when ``SOFTPROMPT_VLLM_PYTHON`` names the
python of ``make vllm-env`` (it takes minutes: vLLM compiles its model on start).
"""

import os
import sys

import httpx
import pytest
import torch

from softprompt.cli import main
from softprompt.serve.store import PromptStore
from softprompt.serve.vllm_app import create_vllm_app
from softprompt.serve.vllm_engine import DeepPromptRefused, InputPrompts, VLLMUnavailable, vllm_version

from .serving import LiveServer, alone, texts
from .vllm_fake import fake_vllm_app

INPUT_LEVEL = ["pt", "pt_long", "ptune", "static", "hard"]
DEEP = {"prefix": "prefix-tuning", "v2": "p-tuning-v2"}


@pytest.fixture(scope="module")
def front(serve_assets):
    """The front app on a stand-in vLLM, both on loopback; yields (openai-less httpx client, fake, prompts)."""
    from softprompt.core.loading import load_model

    model = load_model(serve_assets["model"])
    store = PromptStore(model, serve_assets["prompts"])
    store.load_all()
    prompts = InputPrompts(store)
    fake = fake_vllm_app(model)
    vllm = LiveServer(fake)
    live = LiveServer(create_vllm_app(prompts, vllm.url, version="fake", parent="tiny-llama"))
    with httpx.Client(base_url=live.url, timeout=60) as http:
        yield http, fake, prompts
    live.close()
    vllm.close()


@pytest.mark.parametrize("name", ["base", *INPUT_LEVEL])
def test_answers_equal_softprompt_generation(front, name):
    http, _, prompts = front
    model = prompts.model
    key = None if name == "base" else prompts.store.get(name).key
    for text in texts(3, seed=len(name)):
        body = {"model": name, "prompt": text, "max_tokens": 5, "temperature": 0}
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert r.json()["model"] == name
        assert choice["token_ids"] == alone(model, key, text, 5, eos=set())


def test_embeds_are_prompt_vectors_then_token_embeddings(front):
    http, fake, prompts = front
    entry = prompts.store.get("pt_long")
    ids = prompts.model.tokenizer("the movie was good")["input_ids"]
    x = prompts.inputs("pt_long", ids).embeds
    vec = prompts.store.model.bank.get(entry.key).contribute().embeds
    assert x.shape == (entry.virtual_tokens + len(ids), vec.shape[1])
    torch.testing.assert_close(x[: entry.virtual_tokens], vec.float())
    torch.testing.assert_close(x[entry.virtual_tokens :], prompts.model.embed_tokens(ids))
    http.post("/v1/completions", json={"model": "base", "prompt": ids, "max_tokens": 1})
    assert fake.state.seen[-1]["prompt"] == [ids] and "prompt_embeds" not in fake.state.seen[-1]


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_prompts_refused_naming_method_and_engine(front, name):
    http, _, prompts = front
    r = http.post("/v1/completions", json={"model": name, "prompt": "the movie", "max_tokens": 2})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "engine_refused" and err["param"] == "model"
    assert DEEP[name] in err["message"] and "--engine softprompt" in err["message"]
    with pytest.raises(DeepPromptRefused, match=DEEP[name]):
        prompts.inputs(name, [1, 2])
    cards = {c["id"]: c for c in http.get("/v1/models").json()["data"]}
    assert cards[name]["served"] is False and cards["pt"]["served"] is True


def test_other_routes_and_bad_requests_refused(front):
    http, _, _ = front
    r = http.post("/v1/classify", json={"model": "run", "input": "good"})
    assert r.status_code == 400 and "--engine softprompt" in r.json()["error"]["message"]
    r = http.post("/v1/completions", json={"model": "nope", "prompt": "the", "max_tokens": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = http.post("/v1/completions", json={"model": "pt", "prompt": [10**9], "max_tokens": 1})
    assert r.status_code == 400 and "token id 1000000000" in r.json()["error"]["message"]
    assert http.get("/health").json()["engine"] == "vllm"


@pytest.fixture
def limited(serve_assets):
    """The front with tight limits (2 new tokens, 1 running + 1 waiting, 1 s) on a stand-in vLLM that waits."""
    from softprompt.core.loading import load_model
    from softprompt.serve import EngineConfig

    model = load_model(serve_assets["model"])
    store = PromptStore(model, serve_assets["prompts"])
    store.load_all()
    fake = fake_vllm_app(model)
    vllm = LiveServer(fake)
    config = EngineConfig(max_rows=1, max_queue=1, max_new_tokens=2, request_timeout=1.0)
    live = LiveServer(create_vllm_app(InputPrompts(store), vllm.url, version="fake", config=config))
    yield live.url, fake
    live.close()
    vllm.close()


def test_front_enforces_max_new_tokens_like_the_engine(limited):
    url, _ = limited
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/completions", json={"model": "pt", "prompt": "the movie", "max_tokens": 3})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "invalid_value" and err["param"] == "max_tokens"
        assert err["message"] == "max_tokens=3 is out of range; accepted: [1, 2]"
        r = http.post("/v1/completions", json={"model": "pt", "prompt": "the movie", "max_tokens": 2})
        assert r.status_code == 200 and len(r.json()["choices"][0]["token_ids"]) == 2


def test_front_enforces_max_queue_and_timeout_like_the_engine(limited):
    import concurrent.futures

    url, fake = limited
    fake.state.delay = 0.6  # each request holds its place 0.6 s: 1 runs, 1 waits, the third is refused
    body = {"model": "pt", "prompt": "the movie", "max_tokens": 1}

    def post(_):
        with httpx.Client(base_url=url, timeout=60) as http:
            return http.post("/v1/completions", json=body)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        got = list(pool.map(post, range(3)))
    codes = sorted(r.status_code for r in got)
    assert codes == [200, 200, 429], [r.text for r in got]
    refused = next(r for r in got if r.status_code == 429)
    assert refused.json()["error"]["code"] == "queue_full" and refused.headers["Retry-After"] == "1"
    assert "max_queue=1" in refused.json()["error"]["message"]
    fake.state.delay = 2.0  # past request_timeout=1 s
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        assert "request_timeout=1.0 s" in r.json()["error"]["message"]
        lines = [x for x in http.post("/v1/completions", json={**body, "stream": True}).text.split("\n") if x]
        assert '"code": "timeout"' in lines[0] and lines[-1] == "data: [DONE]"
        fake.state.delay = 0.0
        assert http.post("/v1/completions", json=body).status_code == 200  # every place was given back


def test_missing_vllm_refused_clearly(serve_assets, tmp_path, capsys):
    argv = [
        "serve",
        "--model",
        serve_assets["model"],
        "--prompts",
        serve_assets["prompts"],
        "--engine",
        "vllm",
    ]
    assert main([*argv, "--vllm-python", str(tmp_path / "none" / "python")]) == 2
    err = capsys.readouterr().err
    assert "make vllm-env" in err and "Traceback" not in err
    with pytest.raises(VLLMUnavailable, match="vLLM does not import"):
        vllm_version(sys.executable)  # the project's python has no vLLM


def test_engine_flag_checked(serve_assets, capsys):
    argv = ["serve", "--model", serve_assets["model"], "--prompts", serve_assets["prompts"]]
    assert main([*argv, "--engine", "tgi"]) == 2
    assert "engine='tgi'" in capsys.readouterr().err


VLLM_PYTHON = os.environ.get("SOFTPROMPT_VLLM_PYTHON")


@pytest.mark.skipif(
    not VLLM_PYTHON,
    reason="vLLM not configured: set SOFTPROMPT_VLLM_PYTHON to the python of `make vllm-env` "
    "(vLLM lives in its own virtualenv; starting it takes minutes)",
)
def test_real_vllm_answers_equal_softprompt(tmp_path):
    """SmolLM2 (vLLM's CPU kernels need real head sizes) through a real vLLM server: prompt tuning and P-tuning
    prompts (random, seeded) give softprompt's greedy tokens; prefix tuning is refused."""
    from softprompt.core.loading import load_model
    from softprompt.files.prompts import save_prompt
    from softprompt.methods import make_config
    from softprompt.serve.vllm_app import build_vllm

    model = load_model("smollm2-135m")
    methods = {"pt": ("prompt-tuning", {}), "ptune": ("p-tuning", {}), "prefix": ("prefix-tuning", {})}
    for i, (name, (method, fields)) in enumerate(methods.items()):
        model.add_prompt(name, make_config(method, num_virtual_tokens=8, **fields), seed=i)
        save_prompt(model, name, tmp_path / name)
    front, proc, version = build_vllm("smollm2-135m", str(tmp_path), python=VLLM_PYTHON)
    live = LiveServer(create_vllm_app(front, proc.url, version=version))
    try:
        with httpx.Client(base_url=live.url, timeout=600) as http:
            for name in ["base", "pt", "ptune"]:
                for text in ["Review: a joyless, overlong mess.", "The capital of France is"]:
                    body = {"model": name, "prompt": text, "max_tokens": 8, "temperature": 0}
                    body.update(ignore_eos=True, return_token_ids=True)
                    r = http.post("/v1/completions", json=body)
                    assert r.status_code == 200, r.text
                    key = None if name == "base" else name
                    assert r.json()["choices"][0]["token_ids"] == alone(model, key, text, 8, eos=set())
            r = http.post("/v1/completions", json={"model": "prefix", "prompt": "Hi", "max_tokens": 1})
            assert r.status_code == 400 and "prefix-tuning" in r.json()["error"]["message"]
    finally:
        live.close()
        proc.close()
