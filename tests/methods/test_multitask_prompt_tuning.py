"""Multitask prompt tuning: prompt = shared ∘ (u vᵀ) for the chosen task; starts at the shared prompt; trains the
factors alone when asked; PEFT's MULTITASK_PROMPT_TUNING files in and out with equal logits."""

import json

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.errors import ConfigError
from softprompt.files.peft import import_peft
from softprompt.files.peft_export import export_peft
from softprompt.files.prompts import save_prompt
from softprompt.methods import make_config
from softprompt.testing.models import tiny_model

P = 3


def _perturb(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


def test_prompt_is_the_shared_prompt_times_the_tasks_low_rank_matrix():
    model = PromptedModel(tiny_model("llama"))
    m = model.add_prompt(
        "m", make_config("multitask-prompt-tuning", num_virtual_tokens=P, num_ranks=2, num_tasks=3)
    )
    assert torch.equal(m.contribute().embeds, m.shared)  # u vᵀ == 1 at the start: the shared prompt itself
    _perturb(m)
    m.config.task_id = 2
    want = m.shared * (m.cols[2] @ m.rows[2])
    assert torch.allclose(m.contribute().embeds, want) and not torch.allclose(
        want, m.shared * (m.cols[0] @ m.rows[0])
    )
    assert tuple(m.cols.shape) == (3, P, 2) and tuple(m.rows.shape) == (3, 2, model.info.hidden_size)


def test_transfer_starts_from_a_saved_prompt_and_can_train_only_the_factors(tmp_path):
    model = PromptedModel(tiny_model("llama"))
    src = model.add_prompt("src", make_config("prompt-tuning", num_virtual_tokens=2, init="random"))
    save_prompt(model, "src", tmp_path / "src", form="inference")
    cfg = make_config("multitask-prompt-tuning", num_virtual_tokens=P, init="file",
                      init_file=str(tmp_path / "src"), trained="factors")  # fmt: skip
    m = model.add_prompt("tgt", cfg)
    assert torch.equal(m.shared.detach(), src.embedding.detach()[[0, 1, 0]])
    assert {id(p) for p in model.trainable_parameters(["tgt"])} == {id(m.cols), id(m.rows)}


def test_mistakes_are_named():
    with pytest.raises(ConfigError, match="task_id=2 is out of range"):
        make_config("multitask-prompt-tuning", num_tasks=2, task_id=2)
    with pytest.raises(ConfigError, match="init_file"):
        make_config("multitask-prompt-tuning", init="file")


def _logits(model, kw, name=None):
    with torch.no_grad():
        return model(**kw, prompts=name).logits


def _inputs():
    ids = torch.randint(5, 200, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_peft_import_gives_equal_logits(tmp_path):
    from peft import MultitaskPromptTuningConfig, get_peft_model

    cfg = MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, num_tasks=3, num_ranks=2)
    theirs = get_peft_model(tiny_model("llama"), cfg).eval()
    _perturb(theirs.prompt_encoder)
    theirs.save_pretrained(tmp_path / "ckpt")
    ours = PromptedModel(tiny_model("llama"))
    name = import_peft(ours, tmp_path / "ckpt", "mpt")
    module = ours.bank.get(name)
    assert module.config.method == "multitask-prompt-tuning" and module.config.num_tasks == 3
    kw = _inputs()
    keep = kw["attention_mask"].bool()
    for task in (0, 2):
        module.config.task_id = task
        with torch.no_grad():
            want = theirs(**kw, task_ids=torch.tensor([task, task])).logits[:, P:]
        got = _logits(ours, kw, name)
        assert (got[keep] - want[keep]).abs().max().item() <= 1e-4
    assert (_logits(ours, kw)[keep] - want[keep]).abs().max().item() > 1e-2  # the prompt matters


def test_export_loads_in_peft_with_equal_logits(tmp_path):
    from peft import PeftModel

    ours = PromptedModel(tiny_model("llama"))
    m = ours.add_prompt(
        "m", make_config("multitask-prompt-tuning", num_virtual_tokens=P, num_tasks=2, task_id=1)
    )
    _perturb(m)
    export_peft(ours, "m", tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "MULTITASK_PROMPT_TUNING" and cfg["num_tasks"] == 2
    theirs = PeftModel.from_pretrained(tiny_model("llama"), tmp_path / "out").eval()
    kw = _inputs()
    keep = kw["attention_mask"].bool()
    with torch.no_grad():
        want = theirs(**kw, task_ids=torch.tensor([1, 1])).logits[:, P:]
    assert (_logits(ours, kw, "m")[keep] - want[keep]).abs().max().item() <= 1e-4
    back = import_peft(ours, tmp_path / "out", "back")
    assert torch.equal(ours.bank.get(back).contribute().embeds, m.contribute().embeds)


def test_source_tasks_train_in_one_run_and_export_as_one_multitask_checkpoint(tmp_path):
    """Two source tasks (the same reviews, labels flipped for the second) in one ``train`` run: the shared
    prompt moves, each task's factors move only at its own index, and the export holds both tasks."""
    from softprompt.methods.multitask_prompt_tuning import share_across_tasks
    from softprompt.tasks import make_task
    from softprompt.testing.tokenizer import tiny_tokenizer
    from softprompt.training import TrainJob, train
    from training.test_train import SPEC, TRAIN, VALID, config

    model = PromptedModel(tiny_model("llama"), tokenizer=tiny_tokenizer("causal"))
    for t in (0, 1):
        cfg = make_config(
            "multitask-prompt-tuning", num_virtual_tokens=P, num_tasks=2, num_ranks=2, task_id=t
        )
        model.add_prompt(f"task{t}", cfg, seed=t)
    share_across_tasks(model, ["task0", "task1"])
    a, b = model.bank.get("task0"), model.bank.get("task1")
    before = {k: v.detach().clone() for k, v in a.named_parameters()}
    flipped = [{**ex, "label": {"positive": "negative", "negative": "positive"}[ex["label"]]} for ex in TRAIN]
    task = make_task(model, SPEC, virtual_tokens=P)
    jobs = [TrainJob("task0", task, TRAIN, VALID), TrainJob("task1", task, flipped, VALID)]
    result = train(model, jobs, config(steps=4, eval_every=0, save_every=0), tmp_path / "run", progress=False)
    assert result.trainable_params == sum(p.numel() for p in a.parameters())  # counted once
    assert a.shared is b.shared and not torch.equal(a.shared.detach(), before["shared"])
    for t in (0, 1):
        assert not torch.equal(a.rows[t].detach(), before["rows"][t])  # each task's own factors learned
    assert not torch.equal(a.contribute().embeds, b.contribute().embeds)
    export_peft(model, "task1", tmp_path / "peft")
    cfg = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert cfg["num_tasks"] == 2
    with pytest.raises(ConfigError, match="task_id values"):
        model.add_prompt(
            "again", make_config("multitask-prompt-tuning", num_virtual_tokens=P, num_tasks=2, num_ranks=2)
        )
        share_across_tasks(model, ["task0", "again"])
