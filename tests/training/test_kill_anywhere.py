"""Kill-anywhere training: ``softprompt train`` killed with SIGKILL at random points (during a step, an evaluation,
a checkpoint write, the ``latest`` pointer's write, a log line) and resumed with ``--resume`` ends with the prompt
and the log of an uninterrupted run, and leaves its folder ready for the next ``train``: between the kill and the
resume its run.json reads "interrupted" (its owner is gone), after the resume "finished", never "running".

The number of kill points is ``SOFTPROMPT_KILL_POINTS`` (3 in ``make test``, 20 in ``make fuzz``); the points are
drawn with ``SOFTPROMPT_KILL_SEED`` (default 0) from every place listed in ``POINTS``."""

import json
import os
import random
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from commands.test_cli import write_model_dir, write_reviews
from softprompt.cli import main
from softprompt.files.runs import status_of
from softprompt.training import read_log

STEPS, SAVE_EVERY, EVAL_EVERY = 8, 2, 4
ARGS = ["train", "--method", "prompt-tuning", "--num-virtual-tokens", "3", "--steps", str(STEPS), "--batch-size",
        "4", "--lr", "0.05", "--save-every", str(SAVE_EVERY), "--eval-every", str(EVAL_EVERY), "--log-every", "1",
        "--quiet"]  # fmt: skip

KILL_AT = """
import os, signal, sys
where, nth = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
from softprompt.files import checkpoint
from softprompt.training import loop, records
seen = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def hook(owner, attr, before):
    real = getattr(owner, attr)
    def hooked(*a, **k):
        seen["n"] += 1
        if seen["n"] == nth and before:
            die()
        out = real(*a, **k)
        if seen["n"] == nth:
            die()
        return out
    setattr(owner, attr, hooked)

def half_line(self, record):  # the nth log line is cut half-way, as a kill inside write() would leave it
    seen["n"] += 1
    if seen["n"] < nth:
        return real_write(self, record)
    with open(self.path, "a") as fh:
        text = json.dumps(record)
        fh.write(text[: len(text) // 2])
        fh.flush()
        os.fsync(fh.fileno())
    die()

import json
real_write = records.Log.write
if where == "step":
    hook(loop._Trainer, "_step", before=True)
elif where == "evaluation":  # the scores are computed, not yet recorded or logged
    hook(loop, "evaluate_sharded", before=False)
elif where == "checkpoint":  # inside the atomic folder: params written, the rest not
    hook(checkpoint, "_save_tensors", before=False)
    nth = 3 * (nth - 1) + 1
elif where == "pointer":  # the checkpoint folder is complete, `latest` not yet moved to it
    hook(checkpoint, "atomic_write_text", before=True)
elif where == "log":
    records.Log.write = half_line
from softprompt.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``softprompt`` that SIGKILLs itself at the nth passage through one place (the hook lives in the test)."""

POINTS = (
    [("step", n) for n in range(1, STEPS + 1)]
    + [("evaluation", n) for n in range(1, STEPS // EVAL_EVERY + 1)]
    + [("checkpoint", n) for n in range(1, STEPS // SAVE_EVERY + 1)]
    + [("pointer", n) for n in range(1, STEPS // SAVE_EVERY + 1)]
    + [("log", n) for n in range(1, STEPS + 1)]
)
COUNT = int(os.environ.get("SOFTPROMPT_KILL_POINTS", "3"))
CHOSEN = random.Random(int(os.environ.get("SOFTPROMPT_KILL_SEED", "0"))).sample(
    POINTS, min(COUNT, len(POINTS))
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    model, data = write_model_dir(root / "model"), write_reviews(root / "data.jsonl", n=40)
    args = [*ARGS, "--model", str(model), "--dataset", str(data)]
    torch.set_num_threads(1)
    assert main([*args, "--out", str(root / "ref")]) == 0
    return args, root / "ref"


def _state(out):
    prompt = load_file(str(out / "final" / "data" / "prompt.safetensors"))
    log = [
        {k: v for k, v in r.items() if k not in ("elapsed", "speed") and not k.endswith("_per_s")}
        for r in read_log(out)
    ]
    return prompt, [r for r in log if "loss" in r or "eval" in r]


@pytest.mark.parametrize(("where", "nth"), CHOSEN, ids=[f"{w}-{n}" for w, n in CHOSEN])
def test_killed_anywhere_then_resumed_equals_an_uninterrupted_run(tmp_path, reference, where, nth):
    args, ref = reference
    out, env = tmp_path / "run", {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.run(
        [sys.executable, "-c", KILL_AT, where, str(nth), *args, "--out", str(out)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    assert not (out / "final").exists()
    assert status_of(json.loads((out / "run.json").read_text())) == "interrupted"  # its process is gone
    resumed = subprocess.run(
        [sys.executable, "-m", "softprompt", *args, "--out", str(out), "--resume"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (ref_prompt, ref_log), (prompt, log) = _state(ref), _state(out)
    assert set(prompt) == set(ref_prompt) and all(torch.equal(prompt[k], ref_prompt[k]) for k in prompt)
    assert log == ref_log
    doc = json.loads((out / "run.json").read_text())
    assert status_of(doc) == doc["status"] == "finished" and "error" not in doc
