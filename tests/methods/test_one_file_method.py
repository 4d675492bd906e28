"""A new method is one file and one register line: "scaled prompt tuning", defined and registered here, trains
with the one training loop (its own registered learning rate), saves, loads with equal outputs, is served over
HTTP, is listed by ``softprompt methods`` and passes the shared invariant suite; no other file of the package
changes. The README's "Add a method" section shows this file."""

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

import softprompt
from commands.test_cli import write_model_dir, write_reviews
from core.test_invariants import *  # noqa: F403 (the per-method invariants, run here for METHODS_UNDER_TEST)
from softprompt import Contribution, Method, MethodConfig
from softprompt.cli import main
from softprompt.core.model import PromptedModel
from softprompt.errors import check_range
from softprompt.testing.models import tiny_model
from softprompt.testing.registry import registered as registered_for_a_while


# ----- the method: this block is the whole of it (README.md, "Add a method") -----------------------------------
@dataclass(kw_only=True)
class ScaledPromptConfig(MethodConfig):
    """Prompt tuning with a fixed scale: the stored values are the embeddings divided by ``scale``."""

    method: str = "scaled-prompt"  # the method's name
    num_virtual_tokens: int = 4
    scale: float = 4.0
    """Embeddings = scale x parameters (a larger scale, a larger step per update); (0, 100]."""

    def __post_init__(self):
        check_range("num_virtual_tokens", self.num_virtual_tokens, low=1, high=4096)
        check_range("scale", self.scale, low=0, high=100, low_open=True)


class ScaledPrompt(nn.Module):
    def __init__(self, config: ScaledPromptConfig, ctx):
        super().__init__()
        self.config = config
        g = torch.Generator().manual_seed(ctx.seed)
        ids = torch.randint(0, ctx.embeddings.shape[0], (config.num_virtual_tokens,), generator=g)
        self.weight = nn.Parameter(ctx.embed_tokens(ids.tolist()) / config.scale)  # (P, H): real words

    def contribute(self) -> Contribution:
        return Contribution(embeds=self.weight * self.config.scale)  # (P, H)

    def eject(self) -> Contribution:
        return Contribution(embeds=(self.weight * self.config.scale).detach().clone())


METHOD = Method(config=ScaledPromptConfig, module=ScaledPrompt, train={"lr": 0.05})
# softprompt.register(METHOD): the one register line; here it is undone after this file (the fixture below)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def registered():
    """``softprompt.register(METHOD)`` for this file's tests only: the other test files see the built-ins."""
    with registered_for_a_while(METHOD):
        yield


METHODS_UNDER_TEST = ["scaled-prompt"]  # the shared invariant suite (imported above) runs for it
TEXTS = ["the movie was good and great", "the movie was dull and awful"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``softprompt train --method scaled-prompt``: the CLI and the one training loop, at the method's own lr."""
    root = tmp_path_factory.mktemp("scaled")
    model_dir, data = write_model_dir(root / "model"), write_reviews(root / "reviews.jsonl", n=24)
    argv = ["train", "--model", model_dir, "--method", "scaled-prompt", "--dataset", data]
    argv += ["--out", root / "prompts" / "scaled", "--scale", 2, "--num-virtual-tokens", 3, "--steps", 4]
    argv += ["--batch-size", 4, "--eval-every", 0, "--verbalizer", "positive=good;negative=bad", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return {"model": model_dir, "prompts": root / "prompts", "run": root / "prompts" / "scaled"}


def test_trained_with_its_registered_defaults_and_fields(run):
    config = json.loads((run["run"] / "run.json").read_text())["run"]["config"]
    assert config["lr"] == 0.05 and config["steps"] == 4  # its Method.train, under the flags
    trained = softprompt.load_trained(run["run"])
    module = trained.model.bank.get(trained.name)
    assert isinstance(module, ScaledPrompt) and module.config.scale == 2.0
    assert module.config.num_virtual_tokens == 3


def test_save_load_gives_equal_outputs(run, tmp_path):
    trained = softprompt.load_trained(run["run"])
    ids = trained.model.tokenizer(TEXTS, return_tensors="pt", padding=True)
    for form in ("training", "inference"):
        softprompt.save_prompt(trained.model, trained.name, tmp_path / form, form=form)
        fresh = softprompt.load_model(str(run["model"]))
        name, meta = softprompt.load_prompt(fresh, tmp_path / form)
        assert meta["config"]["method"] == ("scaled-prompt" if form == "training" else "static")
        with trained.model.inference(), fresh.inference():
            want = trained.model(ids["input_ids"], ids["attention_mask"], prompts=trained.name).logits
            got = fresh(ids["input_ids"], ids["attention_mask"], prompts=name).logits
        assert torch.equal(got, want)


def test_served_over_http_equals_the_library(run):
    from softprompt.serve.server import BackgroundServer, build_app, build_engine

    trained = softprompt.load_trained(run["run"])
    task = trained.task
    batch = task.collate([{"text": t} for t in TEXTS])
    with torch.no_grad():
        scores = task.scores(trained.model, batch, [trained.name] * 2)  # (B, C) label-word log-probabilities
    tok = trained.model.tokenizer
    ids = torch.tensor([tok(TEXTS[0])["input_ids"]])  # as the server tokenizes a prompt
    greedy = softprompt.generate(trained.model, ids, torch.ones_like(ids), [trained.name], max_new_tokens=4)
    engine = build_engine(str(run["model"]), str(run["prompts"]), device="cpu")
    live = BackgroundServer(build_app(engine))
    try:
        models = httpx.get(live.url + "/v1/models").json()["data"]
        assert {m["id"]: m["method"] for m in models}["scaled"] == "scaled-prompt"
        r = httpx.post(live.url + "/v1/classify", json={"model": "scaled", "input": TEXTS}, timeout=60).json()
        for row, s in zip(r["data"], scores):
            assert row["scores"] == pytest.approx(dict(zip(task.verbalizer.labels, s.tolist())), abs=1e-5)
        body = {"model": "scaled", "prompt": TEXTS[0], "max_tokens": 4, "temperature": 0, "logprobs": 1}
        r = httpx.post(live.url + "/v1/completions", json=body, timeout=60).json()
        want = greedy[0].tolist()
        want = want[: next((i for i, t in enumerate(want) if t in engine.eos), len(want))]
        assert want and r["choices"][0]["logprobs"]["tokens"] == [tok.decode([t]) for t in want]
    finally:
        live.close()
        engine.stop()


def test_listed_by_softprompt_methods(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "scaled-prompt: Prompt tuning with a fixed scale" in out
    assert "--scale" in out and "--lr 0.05" in out
    assert main(["methods", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["scaled-prompt"]
    assert info["fields"]["scale"]["default"] == 4.0 and info["train_defaults"]["lr"] == 0.05


def test_registering_a_name_twice_is_an_error_and_the_registry_is_read_only():
    with pytest.raises(softprompt.ConfigError, match="'scaled-prompt' is already registered"):
        softprompt.register(Method(config=ScaledPromptConfig, module=ScaledPrompt))
    with pytest.raises(softprompt.ConfigError, match="accepted: a MethodConfig dataclass"):
        softprompt.register(Method(config=dict, module=ScaledPrompt))
    with pytest.raises(TypeError):
        softprompt.METHODS["mine"] = softprompt.METHODS["scaled-prompt"]  # type: ignore[index]
    with pytest.raises(TypeError):
        softprompt.METHODS["scaled-prompt"].train["lr"] = 1.0  # type: ignore[index]
    assert "scaled-prompt" in softprompt.TRAINABLE


def test_without_a_peft_mapping_export_refuses_it(tmp_path):
    model = PromptedModel(tiny_model("llama"))
    model.add_prompt("s", softprompt.make_config("scaled-prompt"))
    with pytest.raises(softprompt.UnsupportedModel, match="'scaled-prompt' has no PEFT equivalent"):
        softprompt.export_peft(model, "s", tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_bad_fields_are_refused_by_name():
    with pytest.raises(softprompt.ConfigError, match=r"scale=0\.0 is out of range; accepted: \(0, 100\]"):
        softprompt.make_config("scaled-prompt", scale=0.0)


def test_the_readme_shows_this_method():
    """README.md's "Add a method" code is this file's method block (imports and the register line aside)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shown = readme.split("## Add a method", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    here = Path(__file__).read_text().split("# ----- the method", 1)[1].split("\n# -----", 1)[0]
    assert "\nsoftprompt.register(METHOD)\n" in shown
    skip = ("import ", "from ", "softprompt.register(", "#")
    code = _code(here.split("\n", 1)[1], skip)
    assert len(code) > 20 and _code(shown, skip) == code


def _code(text: str, skip: tuple[str, ...]) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith(skip)]
