"""PromptedModel's train/eval modes: prompts follow them, the frozen backbone stays in eval, and the inference
paths (``inference()``, ``generate``) restore the caller's mode."""

import torch

from conftest import batch, loss_of, make_model
from softprompt.core.generation import generate
from softprompt.methods import make_config


def test_new_model_is_in_eval_mode_and_train_leaves_the_backbone_in_eval():
    model = make_model("llama", ["p-tuning-v2"])
    assert not model.training and not any(m.training for m in model.modules())
    model.train()
    prompt = model.bank.get("p_tuning_v2")
    assert model.training and all(m.training for m in prompt.modules())
    assert not any(m.training for m in model.backbone.modules())
    model.add_prompt("late", make_config("prompt-tuning", num_virtual_tokens=2))
    assert model.bank.get("late").training  # a prompt added takes the model's mode
    model.eval()
    assert not any(m.training for m in model.modules())


def test_inference_block_is_eval_and_no_grad_and_restores_the_mode():
    model = make_model("llama", ["p-tuning-v2"])
    model.train()
    with model.inference():
        assert not torch.is_grad_enabled()
        assert not any(m.training for m in model.modules())
    assert torch.is_grad_enabled() and model.training and model.bank.get("p_tuning_v2").training


def test_generate_restores_training_mode():
    model = make_model("llama", ["p-tuning-v2"])
    model.train()
    kw = batch(model, left=True)
    out = generate(model, kw["input_ids"], kw["attention_mask"], "p_tuning_v2", max_new_tokens=2)
    assert out.shape == (3, 2)
    assert model.training and model.bank.get("p_tuning_v2").training


def test_gradient_checkpointing_still_recomputes_with_the_backbone_in_eval():
    """transformers checkpoints a layer only when it is in training mode: the layer itself must be flagged."""
    model = make_model("llama", ["prefix-tuning"])
    model.gradient_checkpointing_enable()
    model.train()
    calls = []
    attn = model.backbone.model.layers[0].self_attn
    attn.register_forward_hook(lambda *a: calls.append(1))
    assert not attn.training  # dropout modules inside stay off
    loss_of(model, batch(model), "prefix_tuning").backward()
    assert len(calls) == 2  # forward + recompute in backward
    model.eval()
    calls.clear()
    loss_of(model, batch(model), "prefix_tuning").backward()
    assert len(calls) == 1
