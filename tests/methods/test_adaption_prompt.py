"""Adaption prompt (LLaMA-Adapter): exactly the frozen model at step 0 (zero gate), moves it once trained, adapts
the top L layers only, refuses families without separate key/value projections, and reads / writes PEFT's
ADAPTION_PROMPT files with equal logits."""

import json

import pytest
import torch

from conftest import REFUSED
from softprompt.core.model import PromptedModel
from softprompt.errors import UnsupportedModel
from softprompt.files.peft import import_peft
from softprompt.files.peft_export import export_peft
from softprompt.methods import make_config
from softprompt.testing.models import FAMILIES, tiny_model

P = 3


def _inputs():
    ids = torch.randint(5, 200, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, kw, name=None):
    with torch.no_grad():
        return model(**kw, prompts=name).logits


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_step_zero_is_exactly_the_frozen_model_and_training_moves_it(family):
    model = PromptedModel(tiny_model(family))
    kw = _inputs()
    bare = tiny_model(family)(**kw).logits
    module = model.add_prompt("a", make_config("adaption-prompt", num_virtual_tokens=P, adapter_layers=1))
    keep = kw["attention_mask"].bool()
    assert torch.equal(_logits(model, kw, "a"), _logits(model, kw))  # exactly unchanged at step 0
    assert torch.allclose(_logits(model, kw, "a")[keep], bare[keep], atol=1e-5)
    assert module.slots == [len(model.info.slots) - 1]  # the top layer only
    opt = torch.optim.SGD(model.trainable_parameters(["a"]), lr=0.5)
    model.train()
    for _ in range(2):
        out = model(**kw, prompts="a", labels=kw["input_ids"])
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    assert module.gate.abs().sum() > 0
    assert (_logits(model, kw, "a")[keep] - bare[keep]).abs().max() > 1e-4


def test_mixed_batch_rows_without_the_prompt_are_untouched():
    model = PromptedModel(tiny_model("llama"))
    module = model.add_prompt("a", make_config("adaption-prompt", num_virtual_tokens=P, adapter_layers=2))
    with torch.no_grad():
        module.gate.fill_(0.7)
    kw = _inputs()
    mixed = _logits(model, kw, ["a", None])
    assert torch.allclose(mixed[0], _logits(model, kw, "a")[0], atol=1e-5)
    assert torch.allclose(mixed[1], _logits(model, kw)[1], atol=1e-5)
    assert (mixed[0] - _logits(model, kw)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("family", sorted(REFUSED["adaption-prompt"]))
def test_families_without_key_value_projections_are_refused(family):
    model = PromptedModel(tiny_model(family))
    with pytest.raises(UnsupportedModel, match="k_proj / v_proj"):
        model.add_prompt("a", make_config("adaption-prompt", num_virtual_tokens=P))
    assert "a" not in model.bank


def test_every_other_family_is_supported():
    for family in set(FAMILIES) - REFUSED["adaption-prompt"]:
        model = PromptedModel(tiny_model(family))
        model.add_prompt("a", make_config("adaption-prompt", num_virtual_tokens=P, adapter_layers=1))


def _perturb(params, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


def test_peft_import_gives_equal_logits(tmp_path):
    from peft import AdaptionPromptConfig, get_peft_model

    cfg = AdaptionPromptConfig(task_type="CAUSAL_LM", adapter_len=P, adapter_layers=2)
    theirs = get_peft_model(tiny_model("llama"), cfg).eval()
    _perturb([p for n, p in theirs.named_parameters() if "adaption_" in n])
    theirs.save_pretrained(tmp_path / "ckpt")
    ours = PromptedModel(tiny_model("llama"))
    name = import_peft(ours, tmp_path / "ckpt", "ap")
    assert ours.bank.get(name).config.method == "adaption-prompt"
    kw = _inputs()
    keep = kw["attention_mask"].bool()
    with torch.no_grad():
        want = theirs(**kw).logits
    got = _logits(ours, kw, name)
    assert (got[keep] - want[keep]).abs().max().item() <= 1e-4
    assert (_logits(ours, kw)[keep] - want[keep]).abs().max().item() > 1e-2


def test_export_loads_in_peft_with_equal_logits(tmp_path):
    from peft import PeftModel

    ours = PromptedModel(tiny_model("llama"))
    module = ours.add_prompt("a", make_config("adaption-prompt", num_virtual_tokens=P, adapter_layers=1))
    _perturb(module.parameters())
    export_peft(ours, "a", tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "ADAPTION_PROMPT" and cfg["adapter_len"] == P and cfg["adapter_layers"] == 1
    theirs = PeftModel.from_pretrained(tiny_model("llama"), tmp_path / "out").eval()
    kw = _inputs()
    keep = kw["attention_mask"].bool()
    with torch.no_grad():
        want = theirs(**kw).logits
    assert (_logits(ours, kw, "a")[keep] - want[keep]).abs().max().item() <= 1e-4


def test_served_completions_equal_the_library(tmp_path):
    """The serving engine decodes an adaption prompt with its adapter (not as the bare model)."""
    import httpx

    import softprompt
    from commands.test_cli import write_model_dir
    from softprompt.serve.server import BackgroundServer, build_app, build_engine

    model_dir = write_model_dir(tmp_path / "model")
    model = softprompt.load_model(str(model_dir))
    module = model.add_prompt("ap", make_config("adaption-prompt", num_virtual_tokens=P, adapter_layers=2))
    _perturb(module.parameters())
    softprompt.save_prompt(model, "ap", tmp_path / "prompts" / "ap")
    text = "the movie was good"
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    want = softprompt.generate(model, ids, torch.ones_like(ids), ["ap"], max_new_tokens=5)[0].tolist()
    bare = softprompt.generate(model, ids, torch.ones_like(ids), [None], max_new_tokens=5)[0].tolist()
    assert want != bare  # the adapter changes the continuation
    engine = build_engine(str(model_dir), str(tmp_path / "prompts"), device="cpu")
    live = BackgroundServer(build_app(engine))
    try:
        body = {"model": "ap", "prompt": text, "max_tokens": 5, "temperature": 0, "logprobs": 1}
        r = httpx.post(live.url + "/v1/completions", json=body, timeout=60).json()
        want = want[: next((i for i, t in enumerate(want) if t in engine.eos), len(want))]
        assert r["choices"][0]["logprobs"]["tokens"] == [model.tokenizer.decode([t]) for t in want]
    finally:
        live.close()
        engine.stop()
