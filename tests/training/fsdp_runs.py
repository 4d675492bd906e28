"""The runs of tests/training/test_fsdp_train.py, and one rank of its FSDP side.

``run_all`` trains, one after the other in this process: ``softprompt train`` for every method, two prompts in
mixed batches (library ``train``), and a run stopped after its step-2 checkpoint then continued with
``--resume``. The test calls it in-process (one process) and launches this file with ``accelerate launch`` and
an FSDP config on 2 CPU processes, which then run ``main``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from softprompt.cli import main as cli
from softprompt.core.model import PromptedModel
from softprompt.methods import TRAINABLE, make_config
from softprompt.tasks import make_task
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer
from softprompt.training import TrainConfig, TrainJob, loop, train

METHODS = list(
    TRAINABLE
)  # every registered method, "hard", multitask prompt tuning and adaption prompt included
RESUMED = "p-tuning-v2"


class Interrupted(Exception):
    """Raised on every rank right after the step-2 checkpoint, as a killed run would stop there."""


def cli_args(method: str, model: Path, data: Path, out: Path) -> list[str]:
    extra = ["--num-virtual-tokens", "2"] if method != "hard" else []
    if method in ("p-tuning-v2", "prefix-tuning"):
        extra += ["--dropout", "0"]
    return [
        "train",
        *("--model", str(model), "--method", method, "--dataset", str(data), "--out", str(out)),
        *extra,
        *("--steps", "4", "--batch-size", "4", "--grad-accum", "2", "--lr", "0.05"),
        *("--eval-every", "2", "--save-every", "2", "--log-every", "2", "--json", "--quiet"),
    ]


def mixed_run(out: Path) -> None:
    """Two prompts of two methods sharing one task: every batch mixes their rows."""
    from training.test_train import SPEC, TRAIN, VALID

    torch.manual_seed(0)
    model = PromptedModel(tiny_model("llama"), tokenizer=tiny_tokenizer("causal"))
    model.add_prompt("p", make_config("prompt-tuning", num_virtual_tokens=3), seed=0)
    model.add_prompt(
        "q", make_config("prefix-tuning", num_virtual_tokens=2, mlp_hidden=8, dropout=0.0), seed=1
    )
    task = make_task(model, SPEC, virtual_tokens=3)
    config = TrainConfig(steps=4, batch_size=4, lr=0.1, eval_every=2, save_every=2, log_every=1)
    jobs = [TrainJob("p", task, TRAIN, VALID), TrainJob("q", task, TRAIN, VALID)]
    assert train(model, jobs, config, out, progress=False).mode == "mixed"


def record_facts(facts: dict):
    """Note, as each run finishes, which parameters hold gradients and optimizer state, and the sharding."""
    finish, optimizer, made = loop._Trainer._finish, loop.optimizer, []

    def making(groups, config):
        made.append(optimizer(groups, config))
        return made[-1]

    def noting(self):
        state = made.pop().state.values() if made else []
        trainable = {id(p) for p in self.params}
        facts[self.out.name] = {
            "grads_elsewhere": [n for n, p in self.model.named_parameters() if p.grad is not None]
            + [n for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in trainable],
            "trainable": sum(p.numel() for p in self.params),
            "optimizer_state": sum(
                t.numel() for s in state for t in s.values() if torch.is_tensor(t) and t.dim()
            ),
            "sharding": self.sharding,
        }
        return finish(self)

    loop._Trainer._finish, loop.optimizer = noting, making

    def undo():
        loop._Trainer._finish, loop.optimizer = finish, optimizer

    return undo


def run_all(root: Path, model: Path, data: Path, *, interrupt: bool) -> dict:
    facts: dict = {}
    undo = record_facts(facts)
    try:
        _run_all(root, model, data, interrupt)
    finally:
        undo()
    return facts


def _run_all(root: Path, model: Path, data: Path, interrupt: bool) -> None:
    for method in METHODS:
        assert cli(cli_args(method, model, data, root / method)) == 0
    mixed_run(root / "mixed")
    if interrupt:  # stop after the step-2 checkpoint, then resume: ends where the uninterrupted run ends
        args, save = cli_args(RESUMED, model, data, root / "resumed"), loop.save

        def save_then_stop(out, state, *a, **kw):
            save(out, state, *a, **kw)
            if state.step == 2:
                raise Interrupted

        loop.save = save_then_stop
        try:
            cli(args)
            raise AssertionError("the run was not interrupted")
        except Interrupted:
            pass
        finally:
            loop.save = save
        assert cli([*args, "--resume"]) == 0


def main(root: str, model: str, data: str) -> None:
    torch.set_num_threads(1)
    facts = run_all(Path(root), Path(model), Path(data), interrupt=True)
    from accelerate import PartialState

    if PartialState().is_main_process:
        (Path(root) / "facts.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(*sys.argv[1:4])
    # Skip the interpreter's teardown (torch 2.13's gloo threads sometimes abort in static destructors after a
    # clean run; see tests/core/fsdp_worker.py).
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
