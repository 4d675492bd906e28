"""``head_lr``: a task's new head (a bare encoder's pooled or token head) learns at its own rate while the prompt
keeps the method's; a run with it resumes bit-identically; the CLI starts prefix tuning's head from
its Method.train_with_head unless ``--head-lr`` is given."""

import json

import pytest
import torch
from test_resume import _cfg, _interrupt_at_step_4
from test_train import TRAIN, VALID, config, setup

from softprompt.errors import ConfigError
from softprompt.methods import METHODS
from softprompt.training import TrainConfig, TrainJob, train
from softprompt.training.optim import param_groups


def _head_run():
    model, task = setup("prefix-tuning", family="bert", head="mean", dropout=0.0, mlp_hidden=8)
    return model, task, TrainJob("p", task, TRAIN, VALID)


def _state(model, task) -> dict[str, torch.Tensor]:
    prompt = {f"prompt.{k}": v for k, v in model.bank.get("p").state_dict().items()}
    head = {f"head.{k}": v for k, v in task.head.state_dict().items()}
    return {k: v.detach().clone() for k, v in {**prompt, **head}.items()}


def test_head_lr_is_checked_by_name():
    with pytest.raises(ConfigError, match=r"head_lr=0.0 is out of range; accepted: \(0, 10\]"):
        TrainConfig(head_lr=0.0)
    assert TrainConfig(head_lr=1).head_lr == 1.0


def test_heads_get_their_own_group_only_when_head_lr_is_set():
    model, task, _ = _head_run()
    modules = {"prompt.p": model.bank.get("p"), "head.p.head": task.head}
    head_ids = {id(p) for p in task.head.parameters()}
    (one,) = param_groups(modules, TrainConfig())
    assert "lr" not in one and len(one["params"]) == len({id(p) for p in one["params"]})
    prompts, heads = param_groups(modules, TrainConfig(head_lr=0.5))
    assert heads["lr"] == 0.5 and {id(p) for p in heads["params"]} == head_ids
    assert "lr" not in prompts and not head_ids & {id(p) for p in prompts["params"]}
    assert [id(p) for p in one["params"]] == [
        id(p) for p in prompts["params"] + heads["params"]
    ]  # same order


def test_the_head_moves_at_head_lr_and_the_prompt_at_lr(tmp_path):
    """lr 1e-8 freezes the prompt in effect while head_lr 0.1 moves the head: the rates are really separate."""
    model, task, job = _head_run()
    before = _state(model, task)
    train(model, job, config(lr=1e-8, head_lr=0.1, warmup_ratio=0.0), tmp_path, progress=False)
    after = _state(model, task)
    moved = {k: (after[k] - before[k]).abs().max().item() for k in before}
    assert max(v for k, v in moved.items() if k.startswith("prompt.")) < 1e-6
    assert max(v for k, v in moved.items() if k.startswith("head.")) > 1e-2


def test_a_run_with_head_lr_resumes_bit_identically(tmp_path, monkeypatch):
    cfg = {"head_lr": 0.05}
    model, task, job = _head_run()
    train(model, job, _cfg(**cfg), tmp_path / "ref", progress=False)
    reference = _state(model, task)

    model, task, job = _head_run()
    _interrupt_at_step_4(monkeypatch, model, job, tmp_path / "run", **cfg)
    model, task, job = _head_run()
    torch.manual_seed(1234)
    train(model, job, _cfg(**cfg), tmp_path / "run", resume=True, progress=False)
    got = _state(model, task)
    assert all(torch.equal(reference[k], got[k]) for k in reference)


def test_cli_prefix_tuning_head_starts_from_head_defaults_unless_given(tmp_path, capsys):
    from commands.test_cli import base_args, write_reviews
    from softprompt.cli import main
    from softprompt.testing.models import pooling_flags, save_encoder

    folder = save_encoder(tmp_path / "st", pooling_flags("pooling_mode_mean_tokens"))
    data = write_reviews(tmp_path / "r.jsonl")
    default = METHODS["prefix-tuning"].train_with_head["head_lr"]
    for out, extra, head_lr in (("default", [], default), ("given", ["--head-lr", "0.002"], 0.002)):
        argv = base_args(
            {"model": folder, "data": data},
            tmp_path / out,
            fields="text=text,label=label",
            method="prefix-tuning",
        )
        assert main([str(a) for a in argv if a != "--quiet"] + ["--mlp-hidden", "8", *extra]) == 0
        err = capsys.readouterr()[1]
        run = json.loads((tmp_path / out / "run.json").read_text())["run"]["config"]
        assert run["head_lr"] == head_lr and run["lr"] == float(argv[argv.index("--lr") + 1])
        assert (f"head_lr {default:g} (the default with a trained head" in err) is (not extra)
    assert "head_lr" not in METHODS["prefix-tuning"].train


def test_methods_lists_the_head_rate(capsys):
    from softprompt.cli import main

    assert main(["methods", "--json"]) == 0
    info = json.loads(capsys.readouterr()[0])
    assert (
        info["prefix-tuning"]["train_defaults_trained_head"]["head_lr"]
        == METHODS["prefix-tuning"].train_with_head["head_lr"]
    )
    assert "head_lr" not in info["prefix-tuning"]["train_defaults"]
    assert main(["methods"]) == 0
    assert "with a trained head (bare encoders): --lr 0.0001 --head-lr 0.03" in capsys.readouterr()[0]
