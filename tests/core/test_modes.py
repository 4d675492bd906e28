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
    """transformers checkpoints only layers in training mode; softprompt's wrapper does not need that."""
    model = make_model("llama", ["prefix-tuning"])
    model.gradient_checkpointing_enable()
    model.train()
    calls = []
    model.backbone.model.layers[0].self_attn.register_forward_hook(lambda *a: calls.append(1))
    assert not any(m.training for m in model.backbone.modules())
    loss_of(model, batch(model), "prefix_tuning").backward()
    assert len(calls) == 2  # forward + recompute in backward
    calls.clear()
    with torch.no_grad():
        loss_of(model, batch(model), "prefix_tuning")
    assert len(calls) == 1  # nothing to recompute without autograd


def test_backbone_dropout_never_fires_in_training_even_with_checkpointing():
    """BART's layers apply dropout from their own ``training`` flag: the backbone must stay in eval."""
    from softprompt.core.model import PromptedModel
    from softprompt.testing.models import FAMILIES

    config = FAMILIES["bart"][1]()
    config.dropout = config.activation_dropout = config.attention_dropout = 0.5
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(0)
    model = PromptedModel(AutoModelForSeq2SeqLM.from_config(config))
    model.add_prompt("p", make_config("prompt-tuning", num_virtual_tokens=2))
    model.gradient_checkpointing_enable()
    model.train()
    kw = batch(model)
    assert torch.equal(loss_of(model, kw, "p"), loss_of(model, kw, "p"))
