"""A run folder is never left blocking the next ``train``: a run that raises records "failed" / "interrupted", one
killed with SIGKILL reads "interrupted" once its process is gone (and the next ``train`` records it so), and a
second training into a folder another live process trains into is refused, naming that process."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_kill_anywhere import ARGS, KILL_AT
from test_train import TRAIN, VALID, setup

from commands.test_cli import one_error_line, write_model_dir, write_reviews
from softprompt.cli import main
from softprompt.errors import ConfigError, PromptFileError
from softprompt.files.prompts import resolve_prompt_dir
from softprompt.files.runs import RunLock, reader_note, status_of
from softprompt.training import TrainConfig, TrainJob, train
from softprompt.training.loop import _Trainer

HOLD_AT_STEP_3 = """
import pathlib, sys, time
from softprompt.training.loop import _Trainer
marker = pathlib.Path(sys.argv.pop(1))
step, calls = _Trainer._step, {"n": 0}
def held(self, *a, **k):  # the 3rd step waits (up to 5 min) with the run folder held, so a test can knock
    calls["n"] += 1
    if calls["n"] == 3:
        marker.write_text("holding")
        time.sleep(300)
    return step(self, *a, **k)
_Trainer._step = held
from softprompt.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``softprompt`` that stops in its 3rd training step, alive, holding the run folder."""


@pytest.fixture(scope="module")
def cli_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("dead")
    model, data = write_model_dir(root / "model"), write_reviews(root / "data.jsonl", n=40)
    torch.set_num_threads(1)
    return [*ARGS, "--model", str(model), "--dataset", str(data)]


def _doc(out):
    return json.loads((out / "run.json").read_text())


def test_a_killed_run_reads_interrupted_a_plain_train_asks_for_resume_and_resume_finishes(
    tmp_path, cli_args, capsys
):
    out, env = tmp_path / "run", {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = (
        subprocess.Popen(  # killed before its 6th step: checkpoints step-2 and step-4, the best prompt saved
            [sys.executable, "-c", KILL_AT, "step", "6", *cli_args, "--out", str(out)],
            env=env,
            stderr=subprocess.PIPE,
        )
    )
    assert victim.wait(timeout=300) == -signal.SIGKILL, victim.stderr.read().decode()[-2000:]
    doc = _doc(out)
    assert (doc["status"], doc["owner"]["pid"]) == ("running", victim.pid)  # nothing runs after SIGKILL...
    assert status_of(doc) == "interrupted"  # ...but every reader sees the owner is gone
    with pytest.warns(UserWarning, match=rf"run {out} interrupted: its process \(pid {victim.pid} on host"):
        assert (
            resolve_prompt_dir(out) == out / "best" / "data"
        )  # eval / predict / inspect read it, and say so

    code = main([*cli_args, "--out", str(out)])
    _, err = capsys.readouterr()
    one_error_line(code, err, "already holds this run (interrupted", f"pid {victim.pid}", "pass --resume")
    assert _doc(out)["status"] == "interrupted"  # recorded by the train that found it

    said = rf"run {out} interrupted: its process \(pid {victim.pid} on host .*; resuming it from its checkpoint step-4"
    with pytest.warns(UserWarning, match=said):
        assert main([*cli_args, "--out", str(out), "--resume"]) == 0
    doc = _doc(out)
    assert (doc["status"], doc["owner"]["pid"]) == ("finished", os.getpid())
    assert reader_note(out) is None


def test_a_second_train_into_a_folder_in_use_is_refused_naming_the_live_process(tmp_path, cli_args, capsys):
    out, marker = tmp_path / "run", tmp_path / "holding"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AT_STEP_3, str(marker), *cli_args, "--out", str(out)],
        env=env, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert holder.poll() is None, holder.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the holding run never reached its 3rd step"
            time.sleep(0.1)
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        for extra in ([], ["--resume"]):
            code = main([*cli_args, "--out", str(out), *extra])
            _, err = capsys.readouterr()
            one_error_line(
                code, err, f"out dir {out} is in use: pid {holder.pid} on host", "is training into it"
            )
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # touched nothing
        assert reader_note(out) == (
            f"run {out} is still training (pid {holder.pid} on host {_doc(out)['owner']['host']}): "
            "reading the prompt it has saved so far"
        )
        assert status_of(_doc(out)) == "running"
    finally:
        holder.kill()
        holder.wait()
    assert status_of(_doc(out)) == "interrupted"
    lock = RunLock(out)
    lock.acquire()  # the OS dropped the dead process's lock
    lock.release()


def _cfg():
    return TrainConfig(steps=6, batch_size=4, lr=0.1, eval_every=2, save_every=2, log_every=1)


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_a_run_that_raises_records_how_it_stopped_and_leaves_the_folder_usable(
    tmp_path, monkeypatch, error, status
):
    real, calls = _Trainer._step, {"n": 0}

    def step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # after the step-2 checkpoint
            raise error
        return real(self, *a, **k)

    monkeypatch.setattr(_Trainer, "_step", step)
    model, task = setup("prompt-tuning")
    with pytest.raises(type(error)):
        train(model, TrainJob("p", task, TRAIN, VALID), _cfg(), tmp_path, progress=False)
    doc = _doc(tmp_path)
    assert (doc["status"], doc["error"], doc["owner"]["pid"]) == (
        status,
        "RuntimeError: boom" if status == "failed" else "KeyboardInterrupt",
        os.getpid(),
    )
    assert status_of(doc) == status
    monkeypatch.undo()
    model, task = setup("prompt-tuning")
    with pytest.raises(ConfigError, match=rf"already holds this run \({status}.*pass --resume"):
        train(model, TrainJob("p", task, TRAIN, VALID), _cfg(), tmp_path, progress=False)
    model, task = setup("prompt-tuning")  # the lock was released: the same process resumes it
    assert (
        train(model, TrainJob("p", task, TRAIN, VALID), _cfg(), tmp_path, resume=True, progress=False).steps
        == 6
    )
    assert _doc(tmp_path)["status"] == "finished"


def test_a_run_refused_at_the_door_records_nothing(tmp_path):
    """A train refused before it starts (the folder holds another run) leaves that run's status as it was."""
    model, task = setup("prompt-tuning")
    train(model, TrainJob("p", task, TRAIN, VALID), _cfg(), tmp_path, progress=False)
    before = (tmp_path / "run.json").read_bytes()
    model, task = setup("prompt-tuning")
    other = TrainConfig(steps=6, batch_size=4, lr=0.2, eval_every=2, save_every=2, log_every=1)
    with pytest.raises(ConfigError, match="holds another run"):
        train(model, TrainJob("p", task, TRAIN, VALID), other, tmp_path, progress=False)
    assert (tmp_path / "run.json").read_bytes() == before


def test_a_run_recorded_as_running_by_a_live_process_without_the_lock_is_refused(tmp_path):
    """A live owner that holds no lock (an older softprompt, say) is not taken for dead."""
    import psutil

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"pid": sleeper.pid, "host": __import__("socket").gethostname(),
                 "started": psutil.Process(sleeper.pid).create_time()}  # fmt: skip
        (tmp_path / "run.json").write_text(json.dumps({"run": {}, "status": "running", "owner": owner}))
        model, task = setup("prompt-tuning")
        with pytest.raises(
            ConfigError, match=rf"is in use: pid {sleeper.pid} on host .*run.json says running"
        ):
            train(model, TrainJob("p", task, TRAIN, VALID), _cfg(), tmp_path, progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    with (
        pytest.raises(PromptFileError, match="no saved prompt yet"),
        pytest.warns(UserWarning, match="interrupted"),
    ):
        resolve_prompt_dir(tmp_path)
