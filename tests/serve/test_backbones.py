"""Every backbone the library generates with generates through the engine, with the same answers: sliding-window
decoders (Mistral, Gemma 2 and 3 local/global layers) and encoder-decoders (T5, BART). Greedy rows equal
``softprompt.generate`` row by row, alone and mixed with other prompts and methods."""

import json
import re

import pytest
import torch

from conftest import method_config
from softprompt.core.model import PromptedModel
from softprompt.serve import Engine, EngineConfig, PromptStore
from softprompt.testing.models import FAMILIES, tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

from .serving import alone, texts
from .test_engine import Collector

METHODS = ["prompt-tuning", "prefix-tuning", "p-tuning-v2", "p-tuning"]
NAMES = [m.replace("-", "_") for m in METHODS] + ["base"]
WINDOWED = ["mistral", "gemma2", "gemma3"]


def backbone(family: str):
    """A tiny ``family`` model; Gemma 3 (two local layers, one global; not among the suite's families) here."""
    if family != "gemma3":
        return tiny_model(family)
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    layers = ["sliding_attention", "sliding_attention", "full_attention"]
    config = Gemma3TextConfig(
        **{"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2},
        **{"vocab_size": 256, "max_position_embeddings": 128, "pad_token_id": 0, "head_dim": 8},
        **{"sliding_window": 6, "query_pre_attn_scalar": 8, "num_hidden_layers": 3, "layer_types": layers},
    )
    return Gemma3ForCausalLM(config).eval()


def served(family: str, **limits) -> Engine:
    """A started engine on tiny ``family`` serving one prompt of every soft method (random, far from init)."""
    kind = (
        "seq2seq" if family in FAMILIES and FAMILIES[family][0].__name__.endswith("Seq2SeqLM") else "causal"
    )
    model = PromptedModel(backbone(family), tiny_tokenizer(kind))
    store = PromptStore(model)
    for i, method in enumerate(METHODS):
        name = method.replace("-", "_")
        model.add_prompt(name, method_config(method, 3 + i), seed=i)
        with torch.no_grad():
            for p in model.bank.get(name).parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 0.5)
        store.adopt(name)
    return Engine(store, EngineConfig(max_rows=4, max_tokens_per_step=24, **limits)).start()


def submit(engine, name: str, text: str, max_tokens: int) -> Collector:
    sink = Collector()
    ids = engine.tok(text)["input_ids"]
    engine.submit(engine.completion(ids, name, sink=sink, max_tokens=max_tokens, temperature=0.0))
    return sink


def library(engine, name: str, text: str, max_tokens: int) -> list[int]:
    key = None if name == "base" else engine.store.get(name).key
    with engine.store.lock:
        return alone(engine.model, key, text, max_tokens, engine.eos)


def jobs(n: int, seed: int) -> list[tuple[str, str, int]]:
    return [(NAMES[i % len(NAMES)], t, 4 + (i * 5) % 13) for i, t in enumerate(texts(n, seed=seed))]


@pytest.fixture(scope="module", params=WINDOWED)
def windowed(request):
    engine = served(request.param)
    yield engine
    engine.stop()


def test_sliding_window_rows_mixed_equal_the_library(windowed):
    """20 requests over 4 methods + base, 4 rows at a time: rows join and leave past the window."""
    window = windowed.model.info.sliding_window
    work = jobs(20, seed=1)
    assert max(len(windowed.tok(t)["input_ids"]) + m for _, t, m in work) > 2 * window
    sinks = [submit(windowed, *job) for job in work]
    got = [s.wait()[0] for s in sinks]
    for job, toks in zip(work, got):
        assert toks == library(windowed, *job), job
    assert len({tuple(g) for g in got}) > len(got) // 2  # the answers differ: the test can tell rows apart


def test_sliding_window_rows_alone_equal_the_library(windowed):
    for name, text, m in jobs(len(NAMES), seed=2):
        long = f"{text} the movie was not a bad film and it is"  # longer than the window before any new token
        assert submit(windowed, name, long, m).wait()[0] == library(windowed, name, long, m)


@pytest.fixture(scope="module", params=["t5", "bart"])
def seq2seq(request):
    engine = served(request.param)
    yield engine
    engine.stop()


def test_encoder_decoder_rows_mixed_equal_the_library(seq2seq):
    """Encoder once per request, decoder rows of different lengths in one step (BART: learned positions)."""
    work = jobs(20, seed=3)
    sinks = [submit(seq2seq, *job) for job in work]
    got = [s.wait()[0] for s in sinks]
    for job, toks in zip(work, got):
        assert toks == library(seq2seq, *job), job
    assert len({tuple(g) for g in got}) > len(got) // 2


def test_encoder_decoder_rows_alone_equal_the_library(seq2seq):
    for job in jobs(len(NAMES), seed=4):
        assert submit(seq2seq, *job).wait()[0] == library(seq2seq, *job)


def test_encoder_decoder_lengths_are_checked_per_side(seq2seq):
    from softprompt.errors import InputTooLong

    limit = seq2seq.intake.positions
    if seq2seq.model.info.family == "t5":
        assert limit is None  # relative positions: no limit on either side
        return
    with pytest.raises(InputTooLong, match="decoder's context"):
        seq2seq.completion([5, 6], "base", sink=Collector(), max_tokens=limit)
    with pytest.raises(InputTooLong, match="encoder's context"):
        seq2seq.completion([5] * limit, "prompt_tuning", sink=Collector(), max_tokens=2)
    assert submit(seq2seq, "base", "the movie " * 30, 40).wait()[2]["finish_reason"]  # encoder + decoder fit


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert")
    tiny_model("bert").save_pretrained(path)
    tiny_tokenizer("masked").save_pretrained(path)
    (path / "prompts").mkdir()
    return path


def test_a_backbone_that_cannot_generate_says_so_at_startup_and_on_the_request(bert_dir, monkeypatch, capsys):
    """`softprompt serve` on a masked LM: a one-line warning at startup; completions get a 400 naming the model,
    the reason and what works instead (no traceback); the server keeps serving."""
    import httpx

    from softprompt.cli import main

    from .serving import LiveServer

    seen = {}

    def fake_run(app, host, port, **kw):
        live = LiveServer(app)
        try:
            body = {"model": "base", "prompt": "the movie", "max_tokens": 3}
            seen["completion"] = httpx.post(f"{live.url}/v1/completions", json=body, timeout=30)
            seen["health"] = httpx.get(f"{live.url}/health", timeout=30)
        finally:
            live.close()

    monkeypatch.setattr("uvicorn.run", fake_run)
    startup = (
        re.escape(f"--model {bert_dir}: BertForMaskedLM (bert) cannot generate")
        + ".* /v1/classify still works"
    )
    with pytest.warns(UserWarning, match=startup):
        assert main(["serve", "--model", str(bert_dir), "--prompts", str(bert_dir / "prompts")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    r = seen["completion"]
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "unsupported" and error["param"] == "model"
    for part in ("BertForMaskedLM (bert)", "masked LM", "/v1/classify", "T5, BART"):
        assert part in error["message"]
    assert seen["health"].status_code == 200


def test_refusals_name_the_model_the_reason_and_what_works():
    from softprompt.serve.families import refusal

    bart = PromptedModel(tiny_model("bart"))
    bart.backbone.get_decoder().embed_positions = torch.nn.Linear(2, 2)  # a module softprompt cannot index
    said = refusal(bart)
    assert said.startswith("BartForConditionalGeneration (bart) cannot generate") and "Linear" in said
    assert "/v1/classify still works" in said
    assert "encoder without a language-model head" in refusal(PromptedModel(tiny_model("bert", head="base")))
    assert all(
        refusal(PromptedModel(tiny_model(f))) is None for f in ["llama", "mistral", "gemma2", "t5", "bart"]
    )


def test_encoder_decoder_completions_over_http():
    """The HTTP API needs nothing family-specific: T5 completions, plain and streamed, carry the library's text."""
    import httpx

    from softprompt.serve.server import build_app

    from .serving import LiveServer

    engine = served("t5")
    live = LiveServer(build_app(engine, api_key="", parent="tiny-t5"))
    texts_seen = []
    try:
        for name in ("prefix_tuning", "prompt_tuning", "base"):
            text, body = "the movie was not bad", {"model": name, "max_tokens": 6, "temperature": 0}
            want = engine.tok.decode(library(engine, name, text, 6), skip_special_tokens=True)
            r = httpx.post(f"{live.url}/v1/completions", json={**body, "prompt": text}, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["text"].strip() == want.strip()
            texts_seen.append(want)
            with httpx.stream(
                "POST",
                f"{live.url}/v1/completions",
                json={**body, "prompt": text, "stream": True},
                timeout=30,
            ) as s:
                chunks = [line[6:] for line in s.iter_lines() if line.startswith("data: {")]
            streamed = "".join(json.loads(c)["choices"][0]["text"] for c in chunks)
            assert streamed == r.json()["choices"][0]["text"]
        assert len(set(texts_seen)) == 3  # the prompts change the answer
    finally:
        live.close()
        engine.stop()
