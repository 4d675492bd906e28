"""`accelerate launch` with an FSDP config (FSDP2, 2 CPU processes on gloo) trains every method like one process.

The backbone is sharded (each process holds about half its weights), the prompts are the only parameters with
gradients and optimizer state, checkpoints hold the prompt alone, mixed-prompt batches work, a run resumed from
a checkpoint ends where an uninterrupted one does, and every final prompt equals the one-process run with the
same global batch within 1e-4. DeepSpeed is refused with a clear message."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from commands.test_cli import write_model_dir, write_reviews
from softprompt.errors import ConfigError
from training.fsdp_runs import METHODS, RESUMED, run_all

FSDP_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_machines: 1
num_processes: 2
mixed_precision: 'no'
fsdp_config:
  fsdp_version: 2
  fsdp_reshard_after_forward: true
  fsdp_offload_params: false
"""


def launch(tmp_path: Path, *args: str) -> subprocess.Popen:
    """`accelerate launch --config_file fsdp.yaml` (FSDP on a CPU machine: accelerate starts 2 torchrun ranks)."""
    config = tmp_path / "fsdp.yaml"
    config.write_text(FSDP_CONFIG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), *sys.path]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    cmd += ["--main_process_port", str(port), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def prompt_of(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "prompt.safetensors"))


def test_fsdp_trains_every_method_like_one_process(tmp_path):
    # the adaption prompt projects its prompt through sharded k_proj / v_proj outside their forward
    assert {"adaption-prompt", "multitask-prompt-tuning", "hard"} <= set(METHODS)
    model, data = write_model_dir(tmp_path / "model"), write_reviews(tmp_path / "data.jsonl", n=40)
    two = launch(
        tmp_path, str(Path(__file__).with_name("fsdp_runs.py")), str(tmp_path / "two"), str(model), str(data)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_facts = run_all(tmp_path / "one", model, data, interrupt=False)  # meanwhile: one process
    finally:
        torch.set_num_threads(before)
    _, stderr = two.communicate(timeout=900)
    assert two.returncode == 0, stderr[-4000:]
    facts = json.loads((tmp_path / "two" / "facts.json").read_text())

    finals = dict.fromkeys(METHODS, ("final", "data")) | {"mixed": ("final", "p"), "mixed/q": ("final", "q")}
    finals["resumed"] = ("final", "data")
    for run, (kind, name) in finals.items():
        folder = run.split("/")[0]
        one = prompt_of(tmp_path / "one" / (RESUMED if run == "resumed" else folder) / kind / name)
        two_ = prompt_of(tmp_path / "two" / folder / kind / name)
        assert set(one) == set(two_), run
        for k in one:
            assert (one[k] - two_[k]).abs().max().item() <= 1e-4, (run, k)

    for run in [*METHODS, "mixed", "resumed"]:
        ref = tmp_path / "one" / (RESUMED if run == "resumed" else run)
        info = json.loads((tmp_path / "two" / run / "run.json").read_text())
        shard = info["sharding"]
        # 2 transformer blocks and the root, each process holding about half the backbone
        assert info["world_size"] == 2 and shard["kind"] == "fsdp2" and shard["units"] == 3, run
        assert shard["backbone_params_here"] <= 0.6 * shard["backbone_params"], run
        assert "sharding" not in json.loads((ref / "run.json").read_text())
        f = facts[run]
        # only the prompts hold gradients and optimizer state (AdamW's two moments)
        assert f["grads_elsewhere"] == [], run
        assert f["trainable"] == one_facts[ref.name]["trainable"], run
        assert f["optimizer_state"] == 2 * f["trainable"], run
        for step in (2, 4) if run != "hard" else ():  # checkpoints hold the prompt alone, as one process's do
            saved, expected = (
                load_file(str(d / "checkpoints" / f"step-{step}" / "params.safetensors"))
                for d in (tmp_path / "two" / run, ref)
            )
            assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in expected.items()}, run
            assert all(k.startswith("prompt.") for k in saved), run  # nothing of the backbone
    trained = prompt_of(tmp_path / "two" / "prompt-tuning" / "final" / "data")["embedding"]
    ckpt = load_file(
        str(tmp_path / "two" / "prompt-tuning" / "checkpoints" / "step-2" / "params.safetensors")
    )
    assert not torch.equal(trained, ckpt["prompt.data.embedding"])  # steps 3-4 moved it: the check can fail


def test_a_deepspeed_launch_is_refused_before_any_work(monkeypatch, tmp_path):
    from softprompt.training import TrainJob, train
    from training.test_train import TRAIN, VALID, config, setup

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    model, task = setup()
    with pytest.raises(ConfigError, match="DEEPSPEED .* not supported.*fsdp_version: 2"):
        train(model, TrainJob("p", task, TRAIN, VALID), config(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_an_fsdp1_launch_is_refused(monkeypatch, tmp_path):
    from softprompt.training import TrainJob, train
    from training.test_train import TRAIN, VALID, config, setup

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    model, task = setup()
    with pytest.raises(ConfigError, match="fsdp_version=1 is not supported"):
        train(model, TrainJob("p", task, TRAIN, VALID), config(), tmp_path / "run", progress=False)
