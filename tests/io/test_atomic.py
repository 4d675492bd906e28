"""softprompt.io.atomic: folders written in one rename, built once across processes under a file lock, and what
a killed build leaves (nothing that blocks the next one)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from softprompt.io.atomic import atomic_dir, build_once


def entries(folder: Path) -> list[str]:
    """What a folder holds, lock files aside (they stay, empty, beside what they guard)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_build_once_leaves_nothing_when_build_raises(tmp_path):
    dest = tmp_path / "models" / "m"

    def broken(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # killed mid-conversion

    with pytest.raises(KeyboardInterrupt):
        build_once(dest, broken)
    assert entries(dest.parent) == []


def test_build_once_builds_once(tmp_path):
    dest = tmp_path / "m"
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "data.txt").write_text("x")  # nested folders (pip --target) are fsynced too

    assert build_once(dest, build) == dest
    assert build_once(dest, build) == dest
    assert len(calls) == 1 and calls[0] != dest
    assert entries(tmp_path) == ["m"] and (dest / "sub" / "data.txt").read_text() == "x"


BUILDER = """
import sys, time
from pathlib import Path
from softprompt.io.atomic import build_once
dest, log, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
def build(tmp):
    with open(log, "a") as f:
        f.write("built\\n")
    (tmp / "started").write_text("x")
    time.sleep(pause)
    (tmp / "done").write_text("x")
build_once(dest, build)
"""


def builder(dest: Path, log: Path, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(dest), str(log), str(pause)])


def test_two_processes_build_the_same_folder_once(tmp_path):
    dest, log = tmp_path / "m", tmp_path / "log"
    procs = [builder(dest, log, 1.0) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert log.read_text() == "built\n" and sorted(p.name for p in dest.iterdir()) == ["done", "started"]


def test_a_killed_build_blocks_nothing(tmp_path):
    dest, log = tmp_path / "m", tmp_path / "log"
    victim = builder(dest, log, 60.0)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".tmp-m-*/started")):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # mid-build, holding the lock
    victim.wait(timeout=30)
    assert not dest.exists() and list(tmp_path.glob(".tmp-m-*"))  # its partial folder is left
    assert builder(dest, log, 0.0).wait(timeout=120) == 0  # the OS released the lock; the rerun builds
    assert (dest / "done").exists() and entries(tmp_path) == ["log", "m"]  # and removed the partial


def test_atomic_dir_replaces_a_folder_in_one_rename(tmp_path):
    dest = tmp_path / "p"
    with atomic_dir(dest) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("crash mid-write")
    assert (dest / "a").read_text() == "1" and entries(tmp_path) == ["p"]
