"""load_model's device and dtype; prompts stay float32 on any backbone dtype; the fingerprint is dtype-blind."""

import pytest
import torch

from conftest import batch, make_model
from softprompt.core.arch import BackboneInfo, embedding_fingerprint, fingerprints_match
from softprompt.core.loading import load_model, resolve_device, resolve_dtype
from softprompt.core.model import PromptedModel
from softprompt.errors import BackboneMismatch, ConfigError
from softprompt.files.prompts import check_backbone, load_prompt, save_prompt
from softprompt.methods import make_config
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(path)
    tiny_tokenizer("causal").save_pretrained(path)
    return path


def test_dtype_names_and_errors():
    assert resolve_dtype("bfloat16") is torch.bfloat16 and resolve_dtype("fp16") is torch.float16
    assert resolve_dtype(torch.float32) is torch.float32
    with pytest.raises(ConfigError, match=r"dtype='int8'.*float32, bfloat16, float16"):
        resolve_dtype("int8")


def test_device_auto_takes_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda:0")
    with pytest.raises(ConfigError, match=r"device='tpu'.*auto, cpu, cuda, cuda:N, mps"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_load_model_in_dtype_keeps_prompts_float32(folder, dtype):
    model = load_model(str(folder), dtype=dtype, device="cpu")
    assert model.backbone.dtype == resolve_dtype(dtype) and not model.training
    for method in ("prompt-tuning", "prefix-tuning"):
        module = model.add_prompt(method, make_config(method, num_virtual_tokens=3))
        assert all(p.dtype == torch.float32 for p in module.parameters())
    out = model(**batch(model), prompts=["prompt-tuning", "prefix-tuning", None])
    assert out.logits.dtype == resolve_dtype(dtype) and torch.isfinite(out.logits).all()


def test_same_weights_in_any_dtype_share_a_fingerprint_other_weights_do_not():
    """float32 -> bfloat16 and float32 -> float16 copies (float16 -> bfloat16 rounds twice) all match."""
    base = tiny_model("llama", seed=0)
    ref = PromptedModel(base).info
    for dtype in (torch.bfloat16, torch.float16):
        copy = PromptedModel(tiny_model("llama", seed=0).to(dtype)).info
        assert copy.fingerprint != ref.fingerprint  # the rounded values do differ: matching is tolerant
        assert fingerprints_match(ref.fingerprint, copy) and fingerprints_match(copy.fingerprint, ref)
        assert ref.mismatch(copy) == []
    other = PromptedModel(tiny_model("llama", seed=1)).info
    assert not fingerprints_match(ref.fingerprint, other)
    assert ref.mismatch(other) == ["fingerprint"]
    scaled = tiny_model("llama", seed=0)
    with torch.no_grad():  # shifting every value by 5 % of their spread is caught
        scaled.get_input_embeddings().weight.add_(0.05 * scaled.get_input_embeddings().weight.std())
    assert not fingerprints_match(ref.fingerprint, PromptedModel(scaled).info)


def test_prompt_trained_on_float32_loads_on_a_bfloat16_copy(tmp_path):
    model = make_model("llama", ["p-tuning-v2"])
    save_prompt(model, "p_tuning_v2", tmp_path / "p")
    copy = PromptedModel(tiny_model("llama").to(torch.bfloat16))
    name, _ = load_prompt(copy, tmp_path / "p")
    assert copy.bank.get(name).embedding.weight.dtype == torch.float32
    with pytest.raises(BackboneMismatch, match="fingerprint"):
        load_prompt(PromptedModel(tiny_model("llama", seed=3)), tmp_path / "p")


def test_files_without_new_fields_and_with_the_old_fingerprint_still_load(tmp_path):
    model = make_model("llama")
    old = model.info.to_json()
    old.pop("context_length")
    old["fingerprint"] = model.info.legacy_fingerprint  # what files written before fp2 hold
    assert len(old["fingerprint"]) == 16
    info = BackboneInfo.from_json(old)
    assert info.context_length is None
    check_backbone({"backbone": old}, model.info, tmp_path)  # no error
    wrong = {**old, "fingerprint": "0" * 16}
    with pytest.raises(BackboneMismatch):
        check_backbone({"backbone": wrong}, model.info, tmp_path)


def test_fingerprint_format():
    fp = embedding_fingerprint(tiny_model("bert"))
    kind, shape, rms, means = fp.split(":")
    assert kind == "fp2" and len(shape) == 8 and float(rms) > 0 and len(means.split(",")) == 16


def test_load_model_keeps_the_requested_attention_until_a_prefix_needs_ours(folder):
    from softprompt.core import compat, kv

    model = load_model(str(folder), device="cpu", attn_implementation="eager")
    assert model.attn_implementation == "eager" == compat.attn_implementation(model.backbone)
    model.add_prompt("pt", make_config("prompt-tuning", num_virtual_tokens=2))
    assert compat.attn_implementation(model.backbone) == "eager"
    model.add_prompt("px", make_config("prefix-tuning", num_virtual_tokens=2))
    assert compat.attn_implementation(model.backbone) == kv.ATTN_IMPLEMENTATION
