"""Quantized frozen backbones (bitsandbytes int8 / nf4 on the CPU): every method trains on them with
gradients only on the prompt, save -> load is exact, mixed-prompt batches equal each row alone, the
fingerprint is the full-precision one, and a prompt moves between quantized and full-precision copies."""

import pytest
import torch

from conftest import batch, loss_of, method_config
from softprompt.core.loading import load_model
from softprompt.errors import ConfigError
from softprompt.files.prompts import load_prompt, save_prompt
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

pytest.importorskip("bitsandbytes")

SCHEMES = ["int8", "nf4"]
BF16_ROW_GAP = 4e-3
"""Largest logit gap allowed between a mixed batch and each row alone in bfloat16 compute: two bfloat16 steps at
this model's logits (below 0.5, where one step is 2^-9 = 0.002; measured: one step, with either int8 matmul
dtype). The batch's shape changes the order of float sums, which a bfloat16 rounding can turn into a step."""
OUTLIER = 4.0
"""One hidden feature of the first layer's normed input is scaled this much, so some of its values pass
LLM.int8()'s outlier threshold (6.0) and others do not: without it no activation of a tiny random model is an
outlier and the batch-dependence of LLM.int8() (what ``use_weight_only_int8`` avoids) could not show."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama-outlier")
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].input_layernorm.weight[5] = OUTLIER
    model.save_pretrained(path)
    tiny_tokenizer("causal").save_pretrained(path)
    return str(path)


def quantized(folder, scheme, methods=(), dtype="float32"):
    model = load_model(folder, device="cpu", quantize=scheme, dtype=dtype)
    for i, m in enumerate(methods):
        model.add_prompt(m.replace("-", "_"), method_config(m, 3 + i), seed=i)
    return model


def test_linear_layers_are_quantized_embeddings_and_head_are_not(folder):
    from bitsandbytes.nn import Linear4bit, Linear8bitLt

    for scheme, cls in (("int8", Linear8bitLt), ("nf4", Linear4bit)):
        model = quantized(folder, scheme)
        layer = model.backbone.model.layers[0]
        assert isinstance(layer.self_attn.q_proj, cls) and isinstance(layer.mlp.down_proj, cls)
        assert not isinstance(model.backbone.lm_head, cls)
        assert model.backbone.get_input_embeddings().weight.dtype == torch.float32
        stored = next(p for n, p in layer.mlp.up_proj.named_parameters() if n == "weight")
        assert stored.dtype == (torch.int8 if scheme == "int8" else torch.uint8)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_method_trains_with_gradients_only_on_the_prompt_and_round_trips(
    folder, scheme, method, tmp_path
):
    model = quantized(folder, scheme, [method])
    name = method.replace("-", "_")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.bank.get(name).parameters()}
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    prompt_before = [p.detach().clone() for p in model.trainable_parameters()]
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        loss = loss_of(model, batch(model, seed=step), name)
        loss.backward()
        grads = [p.grad for p in model.trainable_parameters()]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        opt.step()
        opt.zero_grad()
    after = model.backbone.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(prompt_before, model.trainable_parameters()))

    kw = batch(model)
    with model.inference():
        expected = model(**kw, prompts=name).logits
    save_prompt(model, name, tmp_path / "p")
    fresh = quantized(folder, scheme)
    loaded, _ = load_prompt(fresh, tmp_path / "p")
    with fresh.inference():
        assert torch.equal(fresh(**kw, prompts=loaded).logits, expected)


def test_4bit_layers_train_after_an_inference_pass(tmp_path):
    """On a CPU with AVX-512 BF16, bitsandbytes repacks a 4-bit layer's weights on its first forward in eval mode
    without gradients, into a layout with no backward: the prompt's gradient through those layers was wrong
    (0.0 on SmolLM2-135M), silently (``keep_4bit_trainable``). Checked against a float model holding the
    dequantized nf4 weights, after an inference pass; widths of 64 (the block size) so that repacking could run."""
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit
    from bitsandbytes.nn import Linear4bit

    float_model = tiny_model("llama", hidden_size=64, intermediate_size=128)
    float_model.save_pretrained(tmp_path / "q")
    with torch.no_grad():  # what nf4 stores, read back: the reference's weights
        for layer in float_model.model.layers:
            for m in layer.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.copy_(dequantize_4bit(*quantize_4bit(m.weight, blocksize=64, quant_type="nf4")))
    float_model.save_pretrained(tmp_path / "ref")
    for folder in ("q", "ref"):
        tiny_tokenizer("causal").save_pretrained(tmp_path / folder)

    def run(folder, quantize=None):
        model = load_model(str(tmp_path / folder), device="cpu", quantize=quantize)
        model.add_prompt("pt", method_config("prompt-tuning", 4), seed=0)
        kw = batch(model)
        with model.inference():
            logits = model(**kw, prompts="pt").logits
        model.train()
        loss_of(model, kw, "pt").backward()
        return model, logits, [p.grad for p in model.trainable_parameters()]

    model, logits, grads = run("q", "nf4")
    layers = [m for m in model.backbone.modules() if isinstance(m, Linear4bit)]
    assert len(layers) == 14 and not any(m.support_avx512bf16_for_cpu for m in layers)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    _, ref_logits, ref_grads = run("ref")
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def _per_row_gap(model, left: bool) -> float:
    """Largest gap between a mixed batch's logits and each row run alone (its padding cut off)."""
    names = model.bank.names()
    kw = batch(model, rows=6, length=7, left=left)
    rows = [names[0], None, names[2], names[1], names[3], names[0]]
    gap = 0.0
    with model.inference():
        full = model(**kw, prompts=rows).logits
        for r in range(6):
            keep = kw["attention_mask"][r].bool()
            one = {k: v[r : r + 1, keep] for k, v in kw.items()}
            alone = model(**one, prompts=rows[r]).logits[0]
            gap = max(gap, float((full[r, keep] - alone).abs().max()))
    return gap


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("left", [False, True])
def test_mixed_batch_equals_each_row_alone_on_the_quantized_backbone(folder, scheme, left):
    model = quantized(folder, scheme, ["prompt-tuning", "p-tuning", "prefix-tuning", "p-tuning-v2"])
    assert _per_row_gap(model, left) <= 1e-5


def test_llm_int8_would_mix_rows_which_is_why_int8_layers_run_weight_only(folder):
    """One int8 layer fed two rows, the first with an outlier feature: weight-only, the second row's output is
    the same batched or alone; with bitsandbytes' own eval forward (LLM.int8()) it is not, since the outlier
    column is taken out of every row's int8 matmul. (On this model, LLM.int8() layers move the mixed batch
    above away from its rows alone by 1.3e-3, measured.)"""
    from bitsandbytes.nn import Linear8bitLt

    model = quantized(folder, "int8")
    layers = [m for m in model.backbone.modules() if isinstance(m, Linear8bitLt)]
    assert layers and all("forward" in vars(m) for m in layers)  # ours, on each int8 layer
    x = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))  # (rows, hidden)
    x[0, 5], x[1, 7] = 10.0, 5.0  # an outlier (> 6.0) in row 0 only; row 1's own scale set by 5.0
    layer = layers[0]
    with torch.no_grad():
        pinned = float((layer(x)[1] - layer(x[1:])[0]).abs().max())
        del layer.forward  # bitsandbytes' own forward again (the backbone is in eval mode: LLM.int8())
        mixed = float((layer(x)[1] - layer(x[1:])[0]).abs().max())
    assert pinned <= 1e-6 and mixed > 1e-4  # measured: 4e-8 and 2.6e-4


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_prompt_moves_between_quantized_and_full_precision_copies(folder, scheme, tmp_path):
    full = load_model(folder, device="cpu")
    quant = quantized(folder, scheme, ["prefix-tuning"])
    assert quant.info.fingerprint == full.info.fingerprint  # embeddings are not quantized
    assert quant.info.mismatch(full.info) == []
    save_prompt(quant, "prefix_tuning", tmp_path / "q")
    name, _ = load_prompt(full, tmp_path / "q")
    for a, b in zip(full.bank.get(name).parameters(), quant.bank.get("prefix_tuning").parameters()):
        assert torch.equal(a, b)
    kw = batch(full)
    with full.inference(), quant.inference():
        a, b = full(**kw, prompts=name).logits, quant(**kw, prompts="prefix_tuning").logits
    assert 0 < float((a - b).abs().max()) < 0.5 * float(a.abs().max())  # close, not equal: quantized weights
    save_prompt(full, name, tmp_path / "f")
    assert load_prompt(quantized(folder, scheme), tmp_path / "f")[0] == name


def test_unknown_scheme_missing_backend_and_device_are_named(folder, monkeypatch):
    import importlib.metadata

    with pytest.raises(ConfigError, match=r"quantize='int3' is not accepted; choose one of: int8, nf4, fp4"):
        load_model(folder, device="cpu", quantize="int3")

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ConfigError, match=r"needs bitsandbytes, which is not installed; pip install"):
        load_model(folder, device="cpu", quantize="int8")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.42.0")
    with pytest.raises(ConfigError, match=r"bitsandbytes >= 0.48 \(installed: 0.42.0\)"):
        load_model(folder, device="cpu", quantize="nf4")
    monkeypatch.undo()
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"runs on the CPU or CUDA, not on mps"):
        load_model(folder, device="mps", quantize="int8")


def test_quantized_scheme_is_read_off_the_loaded_backbone(folder):
    from softprompt.core.quantize import quantized_scheme

    assert quantized_scheme(load_model(folder, device="cpu").backbone) is None
    assert quantized_scheme(quantized(folder, "int8").backbone) == "int8"
    assert quantized_scheme(quantized(folder, "nf4").backbone) == "nf4"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_gradient_checkpointing_gives_the_same_gradients_on_a_quantized_backbone(folder, scheme):
    model = quantized(folder, scheme, ["p-tuning-v2"])
    kw = batch(model)

    def grads():
        loss_of(model, kw, "p_tuning_v2").backward()
        out = [p.grad.clone() for p in model.trainable_parameters()]
        model.zero_grad()
        return out

    model.train()
    plain = grads()
    model.gradient_checkpointing_enable()
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("native", [False, True])
def test_int8_layer_in_bfloat16_multiplies_in_float32_only_without_bf16_matmul_instructions(
    folder, monkeypatch, native
):
    """On a CPU without bfloat16 matmul instructions (forced here both ways) an int8 layer fed bfloat16
    multiplies in float32, forward and backward, and hands back bfloat16; with them, in bfloat16. Either way
    its output and input gradient equal the float32 reference within bfloat16's tolerance."""
    from bitsandbytes.nn import Linear8bitLt

    from softprompt.core import quantize

    monkeypatch.setattr(quantize, "cpu_multiplies_bf16", lambda: native)
    weights = []  # the dtype each matmul's dequantized weight is made in (torch refuses mixed-dtype matmuls)
    dequantize = quantize._dequantize
    monkeypatch.setattr(
        quantize, "_dequantize", lambda cb, scb, d: weights.append(d) or dequantize(cb, scb, d)
    )
    model = quantized(folder, "int8", dtype="bfloat16")
    layer = next(m for m in model.backbone.modules() if isinstance(m, Linear8bitLt))
    x = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)  # (B, T, in)
    x.requires_grad_(True)
    weights.clear()  # loading ran the backbone once (its probe)
    y = layer(x)
    y.backward(torch.ones_like(y))
    assert weights == [torch.bfloat16 if native else torch.float32] * 2  # forward, backward
    assert y.dtype == x.grad.dtype == torch.bfloat16  # what is kept between layers stays bfloat16
    w = layer.weight.data.float() * layer.state.SCB.float().unsqueeze(1) / 127  # (out, in), float32
    ref = torch.nn.functional.linear(x.detach().float(), w)
    grad = torch.ones_like(ref).matmul(w)
    for got, want in ((y, ref), (x.grad, grad)):  # bfloat16's tolerance, near zero relative to the largest
        torch.testing.assert_close(got.float(), want, rtol=1.6e-2, atol=1e-2 * float(want.abs().max()))
    if not native:  # the float32 matmuls themselves, rounded once
        assert torch.equal(y, ref.to(torch.bfloat16)) and torch.equal(x.grad, grad.to(torch.bfloat16))


@pytest.mark.parametrize("native", [False, True])
def test_matmul_dtype_rule(monkeypatch, native):
    from softprompt.core import quantize

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(quantize, "cpu_multiplies_bf16", lambda: native)
    assert quantize.matmul_dtype(torch.bfloat16, cpu) == (torch.bfloat16 if native else torch.float32)
    assert quantize.matmul_dtype(torch.bfloat16, cuda) == torch.bfloat16  # GPUs: unchanged
    assert quantize.matmul_dtype(torch.float32, cpu) == torch.float32
    assert quantize.matmul_dtype(torch.float16, cpu) == torch.float16
    monkeypatch.undo()
    caps = torch.cpu.get_capabilities()
    assert quantize.cpu_multiplies_bf16() == any(caps.get(k, False) for k in quantize.BF16_MATMUL_FEATURES)


@pytest.mark.parametrize("native", [False, True])
def test_int8_backbone_in_bfloat16_trains_the_prompt_and_keeps_rows_apart(folder, monkeypatch, native):
    from softprompt.core import quantize

    monkeypatch.setattr(quantize, "cpu_multiplies_bf16", lambda: native)
    model = quantized(
        folder, "int8", ["prompt-tuning", "p-tuning", "prefix-tuning", "p-tuning-v2"], "bfloat16"
    )
    model.train()
    for name in model.bank.names():
        loss_of(model, batch(model), name).backward()
        grads = [p.grad for p in model.bank.get(name).parameters()]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    assert _per_row_gap(model, left=True) <= BF16_ROW_GAP
