"""Two CPU processes (`accelerate launch`, gloo) train the same prompt as one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from commands.test_cli import write_model_dir, write_reviews
from softprompt.cli import main
from softprompt.training import read_log


def launcher() -> list[str]:
    """`accelerate launch` for 2 CPU processes. On a machine without GPUs accelerate's launcher starts one
    process unless told --multi_gpu (its torch.distributed path); softprompt then trains on gloo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, capsys):
    model, data = write_model_dir(tmp_path / "model"), write_reviews(tmp_path / "data.jsonl", n=40)
    args = [
        "train",
        "--model",
        str(model),
        "--method",
        "p-tuning-v2",
        "--dropout",
        "0",
        "--num-virtual-tokens",
        "2",
        "--dataset",
        str(data),
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "0.05",
        "--eval-every",
        "3",
        "--save-every",
        "3",
        "--log-every",
        "2",
        "--json",
    ]
    two = subprocess.Popen(
        [*launcher(), "-m", "softprompt", *args, "--out", str(tmp_path / "two")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*args, "--out", str(tmp_path / "one")]) == 0  # meanwhile: one process, in-process
    finally:
        torch.set_num_threads(before)
    one_summary = json.loads(capsys.readouterr().out)
    stdout, stderr = two.communicate(timeout=300)
    assert two.returncode == 0, stderr[-3000:]
    two_summary = json.loads(stdout)  # printed once: only rank 0 prints

    one, two_ = (
        load_file(str(tmp_path / d / "final" / "data" / "prompt.safetensors")) for d in ("one", "two")
    )
    assert set(one) == set(two_)
    for k in one:
        assert (one[k] - two_[k]).abs().max().item() <= 1e-4, k
    assert not torch.equal(
        one["embedding.weight"],
        load_file(str(tmp_path / "one" / "checkpoints" / "step-3" / "params.safetensors"))[
            "prompt.data.embedding.weight"
        ],
    )

    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["world_size"] == 2 and run["run"]["config"]["batch_size"] == 4  # the global batch
    log = read_log(tmp_path / "two")  # one writer: every record once
    assert [r["step"] for r in log if "loss" in r] == [2, 4, 6] and [
        r["step"] for r in log if "eval" in r
    ] == [3, 6]
    for a, b in zip([r for r in read_log(tmp_path / "one") if "loss" in r], [r for r in log if "loss" in r]):
        assert abs(a["loss"] - b["loss"]) <= 1e-5  # the logged loss is averaged over the processes
    assert two_summary["metrics"] == one_summary["metrics"]
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == [
        "latest",
        "step-3",
        "step-6",
    ]
