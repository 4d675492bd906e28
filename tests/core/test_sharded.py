"""A backbone loaded with a ``device_map`` (sharded): every method gives the single-device logits.

On a CPU-only machine the map can name only "cpu" (the dispatch path through accelerate is exercised, the
devices are not); with two or more CUDA devices the layers are split across them (skipped otherwise).
"""

import pytest
import torch

from conftest import SOFT_METHODS, batch, method_config
from softprompt.core.generation import generate
from softprompt.core.loading import load_model
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama-sharded")
    tiny_model("llama").save_pretrained(path)
    tiny_tokenizer("causal").save_pretrained(path)
    return path


def _split(first: str, second: str) -> dict:
    return {
        "model.embed_tokens": first,
        "model.rotary_emb": first,
        "model.layers.0": first,
        "model.layers.1": second,
        "model.norm": second,
        "lm_head": second,
    }


def _compare(folder, device_map, device):
    ref = load_model(str(folder), device=device)
    sharded = load_model(str(folder), device_map=device_map)
    for model in (ref, sharded):
        for m in SOFT_METHODS:
            model.add_prompt(m, method_config(m), seed=1)
    kw = {k: v.to(device) for k, v in batch(ref, rows=4).items()}
    rows = [*SOFT_METHODS[:3], None]
    with ref.inference(), sharded.inference():
        labels = kw["input_ids"].masked_fill(kw["attention_mask"] == 0, -100)
        want, got = ref(**kw, prompts=rows, labels=labels), sharded(**kw, prompts=rows, labels=labels)
        torch.testing.assert_close(got.label_logprobs.to(device), want.label_logprobs, atol=1e-5, rtol=0)
        want, got = ref(**kw, prompts=rows), sharded(**kw, prompts=rows)
        torch.testing.assert_close(got.logits.to(device), want.logits, atol=1e-5, rtol=0)
    left = {k: v.to(device) for k, v in batch(ref, rows=4, left=True).items()}
    args = (left["input_ids"], left["attention_mask"], rows)
    assert torch.equal(
        generate(sharded, *args, max_new_tokens=4, eos_token_id=[]).to(device),
        generate(ref, *args, max_new_tokens=4, eos_token_id=[]),
    )
    return sharded


def test_device_map_on_cpu_gives_the_same_outputs(folder):
    _compare(folder, _split("cpu", "cpu"), "cpu")
    _compare(folder, "auto", "cpu")  # transformers' own placement (everything on the CPU here)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_layers_split_over_two_gpus_give_the_same_outputs(folder):
    sharded = _compare(folder, _split("cuda:0", "cuda:1"), "cuda:0")
    devices = {p.device for p in sharded.backbone.parameters()}
    assert devices == {torch.device("cuda:0"), torch.device("cuda:1")}
    assert all(p.device == torch.device("cuda:0") for p in sharded.trainable_parameters())
