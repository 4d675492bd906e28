"""Who owns a run folder: the training process recorded in its ``run.json``, whether that process still lives,
and the lock that keeps two trainings out of one folder.

``run.json`` names its writer as ``owner``: ``{"pid", "host", "started"}``, ``started`` being the process's start
time, so a pid the OS has since given to another process is not taken for the owner. A run recorded as
"running" whose owner is gone (killed with SIGKILL, out of memory, the machine lost power) was interrupted:
:func:`status_of` says so, readers (``eval``, ``predict``, ``inspect``) print one line about it, and the next
``train`` into the folder records it as "interrupted".

A training holds :data:`LOCK` (a ``filelock`` lock file in the run folder; the OS drops the lock when the
process dies, however it dies) from before it reads the folder until it returns or raises; a second training
into the same folder is refused while the first holds it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Literal

from softprompt.errors import ConfigError
from softprompt.io.atomic import write_errors_named

RUN, LOCK = "run.json", ".train.lock"
Liveness = Literal["alive", "dead", "unknown"]


def current_owner() -> dict:
    """This process as ``run.json`` records its owner."""
    import psutil

    me = psutil.Process()
    return {"pid": me.pid, "host": socket.gethostname(), "started": round(me.create_time(), 2)}


def liveness(owner: object) -> Liveness:
    """Whether the process ``owner`` names still runs: "unknown" when it ran on another host (or is not
    recorded: a run.json written before owners were), "dead" when its pid is gone, a zombie, or now another
    process's (another start time)."""
    import psutil

    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return "unknown"
    if owner.get("host") != socket.gethostname():
        return "unknown"
    try:
        proc = psutil.Process(owner["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "dead"
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return "dead"
    except psutil.Error:  # e.g. another user's process: it exists
        return "alive"
    recorded = owner.get("started")
    if isinstance(recorded, int | float) and abs(started - recorded) > 1.0:
        return "dead"  # the pid was reused
    return "alive"


def who(owner: object) -> str:
    """``pid 123 on host h`` (or ``an unrecorded process``)."""
    if isinstance(owner, dict) and "pid" in owner:
        return f"pid {owner['pid']} on host {owner.get('host', '?')}"
    return "an unrecorded process"


def read_run(run_dir: Path) -> dict | None:
    """``run.json``'s content, or None when it is absent or unreadable (the callers that need it say why)."""
    try:
        doc = json.loads((run_dir / RUN).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def status_of(doc: dict) -> str:
    """The run's status as it is now: "running" recorded by a process that is gone reads "interrupted"."""
    status = str(doc.get("status"))
    if status == "running" and liveness(doc.get("owner")) == "dead":
        return "interrupted"
    return status


def stopped_how(doc: dict) -> str:
    """How a run that is not running stopped, in words: ``interrupted: pid 12 on host h is gone`` ..."""
    status = status_of(doc)
    if status == "interrupted":
        return f"interrupted: its process ({who(doc.get('owner'))}) stopped without finishing"
    if status == "failed":
        return f"failed: {doc.get('error', 'an error')}"
    return status


def reader_note(run_dir: Path) -> str | None:
    """One line for a command that reads a run folder's prompt while the run is not finished; None when it is."""
    doc = read_run(run_dir)
    if doc is None or doc.get("status") == "finished":
        return None
    status, owner = status_of(doc), doc.get("owner")
    if status == "running":
        alive = liveness(owner)
        if alive == "alive":
            return f"run {run_dir} is still training ({who(owner)}): reading the prompt it has saved so far"
        return (
            f"run {run_dir} is recorded as running by {who(owner)}, which cannot be checked from this "
            "host: reading the prompt it has saved so far"
        )
    return f"run {run_dir} {stopped_how(doc)}; reading the prompt it saved before (`train --resume` continues it)"


class RunLock:
    """The training lock of one run folder (see the module docstring). ``acquire`` never waits."""

    def __init__(self, run_dir: Path):
        from filelock import FileLock

        self.run_dir = run_dir
        self._lock = FileLock(str(run_dir / LOCK), timeout=0)

    def acquire(self) -> None:
        """Take the lock, creating the folder if needed.

        Raises:
            ConfigError: another process holds it (named from run.json when it has written its owner there),
                or the folder is a file.
            PromptFileError: the folder cannot be written.
        """
        from filelock import Timeout

        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"out dir {self.run_dir} is a file, not a folder; choose a new or empty folder")
        with write_errors_named(self.run_dir / LOCK):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._lock.acquire()
            except Timeout:
                doc = read_run(self.run_dir) or {}
                owner = doc.get("owner")
                holder = who(owner) if liveness(owner) == "alive" else "another process"
                raise ConfigError(
                    f"out dir {self.run_dir} is in use: {holder} is training into it; wait for it to "
                    "finish or stop it, or choose another out dir"
                ) from None

    def release(self) -> None:
        self._lock.release()
