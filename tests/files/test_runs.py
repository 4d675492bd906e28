"""Whether a run folder's recorded owner still lives: its pid, its host, and its start time (a reused pid is
another process)."""

import socket
import subprocess
import sys

import pytest

from softprompt.errors import ConfigError
from softprompt.files.runs import RunLock, current_owner, liveness, status_of, who


def test_this_process_is_alive_and_a_reused_pid_or_a_gone_one_is_dead():
    me = current_owner()
    assert liveness(me) == "alive"
    assert liveness({**me, "started": me["started"] - 100}) == "dead"  # same pid, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert liveness({**me, "pid": child.pid}) == "dead"


@pytest.mark.parametrize(
    "owner", [None, {}, {"pid": "12"}, {"pid": 1, "host": socket.gethostname() + "-elsewhere"}]
)
def test_an_owner_that_cannot_be_checked_is_unknown_and_its_run_stays_running(owner):
    assert liveness(owner) == "unknown"
    assert status_of({"status": "running", "owner": owner}) == "running"
    assert who(owner).startswith(("pid", "an unrecorded"))


def test_a_running_run_whose_owner_is_gone_reads_interrupted():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    owner = {**current_owner(), "pid": child.pid}
    assert status_of({"status": "running", "owner": owner}) == "interrupted"
    assert status_of({"status": "failed", "owner": owner}) == "failed"


def test_the_lock_refuses_a_second_holder_and_a_file(tmp_path):
    first = RunLock(tmp_path / "run")
    first.acquire()
    try:
        with pytest.raises(ConfigError, match="is in use: another process is training into it"):
            RunLock(tmp_path / "run").acquire()
    finally:
        first.release()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunLock(tmp_path / "file").acquire()
