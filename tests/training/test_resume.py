"""Resuming: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted one; a crash inside a
checkpoint save never leaves a half-written checkpoint as the latest; corrupt files are named."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import TRAIN, VALID, setup

from commands.test_cli import write_model_dir, write_reviews
from softprompt.cli import main
from softprompt.errors import PromptFileError
from softprompt.files import checkpoint
from softprompt.training import TrainConfig, TrainJob, read_log, train


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "prompt.safetensors"))


SLOW_STEPS = """
import sys, time
from softprompt.training.loop import _Trainer
step = _Trainer._step
def slow(self, *a, **k):  # 0.4 s after each step, so the test can kill the run half-way
    out = step(self, *a, **k)
    time.sleep(0.4)
    return out
_Trainer._step = slow
from softprompt.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``softprompt`` with each training step slowed down (the hook lives in the test, not in the loop)."""


def test_sigkill_then_resume_is_bit_identical(tmp_path, capsys):
    model, data = write_model_dir(tmp_path / "model"), write_reviews(tmp_path / "data.jsonl", n=40)
    args = [
        "train",
        "--model",
        str(model),
        "--method",
        "p-tuning",
        "--encoder",
        "mlp",
        "--encoder-hidden",
        "8",
        "--num-virtual-tokens",
        "3",
        "--dataset",
        str(data),
        "--steps",
        "8",
        "--batch-size",
        "4",
        "--lr",
        "0.05",
        "--save-every",
        "2",
        "--eval-every",
        "4",
        "--log-every",
        "1",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the in-process reference runs on one thread too
    victim_out = tmp_path / "victim"
    victim = subprocess.Popen(
        [sys.executable, "-c", SLOW_STEPS, *args, "--out", str(victim_out)], env=env, stderr=subprocess.PIPE
    )

    def kill_after_first_checkpoint():
        deadline = time.time() + 120
        while not (victim_out / "checkpoints" / "latest").exists() and victim.poll() is None:
            if time.time() > deadline:
                break
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0  # the uninterrupted run, meanwhile, in-process
    killer.join()
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read().decode()[-2000:]
    assert not (victim_out / "final").exists()  # killed half-way
    killed_at = checkpoint.latest(victim_out).name
    resumed = subprocess.run(
        [sys.executable, "-m", "softprompt", *args, "--out", str(victim_out), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ref, got = tensors(tmp_path / "ref" / "final" / "data"), tensors(victim_out / "final" / "data")
    assert killed_at != "step-8" and set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    losses = [[r["loss"] for r in read_log(d) if "loss" in r] for d in (tmp_path / "ref", victim_out)]
    assert (
        losses[0] == losses[1] and len(losses[0]) == 8
    )  # the log was cut back to the checkpoint, then redone


class Interrupted(Exception):
    pass


def _cfg(**kw):
    base = {"steps": 6, "batch_size": 4, "lr": 0.1, "eval_every": 2, "save_every": 2, "log_every": 1}
    return TrainConfig(**{**base, **kw})


def _dropout_run():
    """Prefix dropout makes the result depend on the torch RNG, which the checkpoint must restore."""
    model, task = setup("prefix-tuning", dropout=0.3, mlp_hidden=8)
    return model, TrainJob("p", task, TRAIN, VALID)


def test_resume_restores_rng_and_optimizer_in_process(tmp_path, monkeypatch):
    model, job = _dropout_run()
    train(model, job, _cfg(), tmp_path / "ref", progress=False)
    reference = {k: v.detach().clone() for k, v in model.bank.get("p").state_dict().items()}

    model, job = _dropout_run()
    _interrupt_at_step_4(monkeypatch, model, job, tmp_path / "run")
    model, job = _dropout_run()  # a fresh process: new model, prompt re-initialized, RNG elsewhere
    torch.manual_seed(1234)
    train(model, job, _cfg(), tmp_path / "run", resume=True, progress=False)
    got = model.bank.get("p").state_dict()
    assert all(torch.equal(reference[k], got[k]) for k in reference)


def test_crash_inside_a_checkpoint_save_keeps_latest_on_the_previous_one(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = checkpoint._save_tensors

    def flaky(tensors, path):
        calls["n"] += 1
        if calls["n"] == 5:  # the second checkpoint's optimizer file (3 tensor files per checkpoint)
            raise OSError("disk full")
        real(tensors, path)

    monkeypatch.setattr(checkpoint, "_save_tensors", flaky)
    model, job = _dropout_run()
    with pytest.raises(OSError, match="disk full"):
        train(model, job, _cfg(), tmp_path, progress=False)
    root = tmp_path / "checkpoints"
    assert (root / "latest").read_text() == "step-2"
    assert sorted(p.name for p in root.iterdir()) == [
        "latest",
        "step-2",
    ]  # no half-written step-4, no temp dir
    assert checkpoint.load_checkpoint(checkpoint.latest(tmp_path)).step == 2
    monkeypatch.setattr(checkpoint, "_save_tensors", real)
    model, job = _dropout_run()
    assert train(model, job, _cfg(), tmp_path, resume=True, progress=False).steps == 6


def test_checkpoints_are_safetensors_and_json_only_and_the_last_two_are_kept(tmp_path):
    model, job = _dropout_run()
    train(model, job, _cfg(), tmp_path, progress=False)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-4", "step-6"]
    files = sorted(p.name for p in (root / "step-6").iterdir())
    assert files == [
        "optimizer.json",
        "optimizer.safetensors",
        "params.safetensors",
        "rng.json",
        "rng.safetensors",
        "scheduler.json",
        "trainer.json",
    ]
    for f in (root / "step-6").iterdir():
        assert not f.read_bytes().startswith(b"\x80")  # no pickle stream anywhere
    ckpt = checkpoint.load_checkpoint(root / "step-6")
    assert ckpt.rng[0]["torch"].dtype == torch.uint8
    assert ckpt.optimizer["param_groups"][0]["betas"] == (0.9, 0.999)
    assert json.loads((root / "step-6" / "trainer.json").read_text())["step"] == 6


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda d: (d / "params.safetensors").write_bytes(b"\x00" * 7), "params.safetensors"),
        (
            lambda d: (d / "optimizer.safetensors").write_bytes(
                (d / "optimizer.safetensors").read_bytes()[:-9]
            ),
            "optimizer.safetensors",
        ),
        (lambda d: (d / "trainer.json").write_text("{not json"), "trainer.json"),
        (lambda d: (d / "scheduler.json").unlink(), "scheduler.json"),
    ],
)
def test_corrupt_checkpoint_files_are_named(tmp_path, damage, named):
    model, job = _dropout_run()
    train(model, job, _cfg(steps=2), tmp_path, progress=False)
    damage(tmp_path / "checkpoints" / "step-2")
    with pytest.raises(PromptFileError, match=named):
        checkpoint.load_checkpoint(tmp_path / "checkpoints" / "step-2")
    model, job = _dropout_run()
    with pytest.raises(PromptFileError, match=named):
        train(model, job, _cfg(steps=2), tmp_path, resume=True, progress=False)


def test_a_run_recorded_with_the_older_fingerprint_resumes(tmp_path, monkeypatch):
    from softprompt.core.arch import legacy_fingerprint
    from softprompt.errors import ConfigError

    model, job = _dropout_run()
    _interrupt_at_step_4(monkeypatch, model, job, tmp_path / "run")
    run_file = tmp_path / "run" / "run.json"
    doc = json.loads(run_file.read_text())
    assert doc["run"]["backbone"].startswith("fp2:")
    doc["run"]["backbone"] = legacy_fingerprint(model.backbone)  # as run.json was written before fp2
    run_file.write_text(json.dumps(doc))
    model, job = _dropout_run()
    assert train(model, job, _cfg(), tmp_path / "run", resume=True, progress=False).steps == 6
    doc["run"]["backbone"] = "0123456789abcdef"  # another model's weights: still refused, and named
    run_file.write_text(json.dumps(doc))
    model, job = _dropout_run()
    with pytest.raises(ConfigError, match="backbone"):
        train(model, job, _cfg(), tmp_path / "run", resume=True, progress=False)


def _interrupt_at_step_4(monkeypatch, model, job, out, **config):
    """Train (``_cfg(**config)``) until the step-4 checkpoint is saved, then die there (as a killed process would)."""
    save = checkpoint.save_checkpoint

    def save_then_die(out_dir, step, **kw):
        path = save(out_dir, step, **kw)
        if step == 4:
            raise Interrupted
        return path

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train(model, job, _cfg(**config), out, progress=False)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
