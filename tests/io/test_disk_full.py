"""A full disk or a read-only / unwritable output folder: a PromptFileError naming the path, and nothing
half-written (the old file or folder stays as it was, no temporary file is left, a run resumes afterwards).

The machine's tests run as root, which a read-only mode does not stop, so the faults are injected where the
operating system would raise them: ``os.fsync`` (ENOSPC: the data does not fit) and ``tempfile`` (EROFS)."""

import errno
import os
import tempfile

import pytest
import torch

from conftest import make_model
from softprompt.errors import PromptFileError
from softprompt.files.prompts import load_prompt, save_prompt
from softprompt.io.atomic import atomic_dir, atomic_write_text
from softprompt.training import TrainConfig, TrainJob, read_log, train
from training.test_train import TRAIN, VALID, setup


def _raise(code):
    def fail(*a, **k):
        raise OSError(code, os.strerror(code))

    return fail


def _fail_from(monkeypatch, calls: int, code=errno.ENOSPC):
    """``os.fsync`` works ``calls`` times, then the disk is full."""
    real, seen = os.fsync, {"n": 0}

    def fsync(fd):
        seen["n"] += 1
        if seen["n"] > calls:
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_keeps_the_old_text_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    target.write_text("old")
    _fail_from(monkeypatch, 0)
    with pytest.raises(PromptFileError, match=rf"cannot write {target}: the disk is full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["run.json"]


def test_a_full_disk_keeps_the_old_prompt_folder(tmp_path, monkeypatch):
    model = make_model("llama", ["prompt-tuning"])
    saved = save_prompt(model, "prompt_tuning", tmp_path / "p")
    before = {k: v.clone() for k, v in model.bank.get("prompt_tuning").state_dict().items()}
    with torch.no_grad():
        for p in model.bank.get("prompt_tuning").parameters():
            p.add_(1.0)
    _fail_from(monkeypatch, 0)
    with pytest.raises(PromptFileError, match=rf"cannot write {saved}: the disk is full"):
        save_prompt(model, "prompt_tuning", saved)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["p"]
    fresh = make_model("llama")
    load_prompt(fresh, saved)
    after = fresh.bank.get("prompt_tuning").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("where", ["mkdtemp", "mkstemp"])
def test_a_read_only_folder_is_named(tmp_path, monkeypatch, where):
    monkeypatch.setattr(tempfile, where, _raise(errno.EROFS))
    with pytest.raises(
        PromptFileError, match=rf"cannot write {tmp_path / 'x'}: the file system is read-only"
    ):
        if where == "mkdtemp":
            with atomic_dir(tmp_path / "x"):
                pass
        else:
            atomic_write_text(tmp_path / "x", "text")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_folder_is_named(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PromptFileError, match=f"cannot write {tmp_path / 'x'}"):
            atomic_write_text(tmp_path / "x", "text")
    finally:
        tmp_path.chmod(0o755)


def _run(out, resume=False):
    model, task = setup("prompt-tuning")
    cfg = TrainConfig(steps=6, batch_size=4, lr=0.1, eval_every=2, save_every=2, log_every=1)
    return train(model, TrainJob("p", task, TRAIN, VALID), cfg, out, resume=resume, progress=False)


@pytest.mark.parametrize("calls", [3, 12, 25])
def test_a_run_that_fills_the_disk_stops_naming_the_path_and_resumes(tmp_path, monkeypatch, calls):
    _fail_from(monkeypatch, calls)
    with pytest.raises(PromptFileError, match=rf"cannot write {tmp_path / 'run'}\S*: the disk is full"):
        _run(tmp_path / "run")
    monkeypatch.undo()
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "run").rglob("*"))
    _run(tmp_path / "ref")
    _run(tmp_path / "run", resume=True)
    losses = [[r["loss"] for r in read_log(tmp_path / d) if "loss" in r] for d in ("ref", "run")]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("old")
    real, seen = os.replace, {"n": 0}

    def replace(a, b):  # the first rename moves the old folder aside; the second (tmp -> x) fails
        seen["n"] += 1
        if seen["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(a, b)

    monkeypatch.setattr(os, "replace", replace)
    with (
        pytest.raises(PromptFileError, match=f"cannot write {tmp_path / 'x'}"),
        atomic_dir(tmp_path / "x") as tmp,
    ):
        (tmp / "f").write_text("new")
    assert (tmp_path / "x" / "f").read_text() == "old" and os.listdir(tmp_path) == ["x"]
