"""The run folder: ``run.json`` (what the run is), ``log.jsonl`` (what happened), best and final prompts.

Layout of ``out_dir``::

    run.json                     format, the run's description (config, prompts, model, data), status
                                 ("running", "finished", "failed" with its error, "interrupted"), owner (the
                                 training process: pid, host, start time), result, sharding (FSDP: how the
                                 frozen backbone was split over the processes)
    .train.lock                  held by the training process while it runs (``softprompt.files.runs``)
    log.jsonl                    one JSON object per logged step ({"step", "loss", "lr", ...}) or evaluation
    checkpoints/step-<N>/        resumable state (see softprompt.files.checkpoint); latest -> newest complete one
    best/<prompt>/               prompt (and head) with the best validation main metric so far
    final/<prompt>/              prompt (and head) at the end of training

Only the main process writes here. A run that raises records "failed" (or "interrupted" for Ctrl-C); one killed
outright leaves "running", which every later reader sees as "interrupted" once its owner is gone, and the next
``train`` into the folder records so (:func:`owning`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from softprompt.errors import ConfigError, SoftPromptError
from softprompt.files.runs import LOCK, RunLock, current_owner, liveness, read_run, stopped_how, who
from softprompt.io.atomic import atomic_write_text, write_errors_named

FORMAT = "softprompt-run"
VERSION = 1
RUN, LOG = "run.json", "log.jsonl"


def normalize(obj: object) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(obj, default=str))


def check_out_dir(
    out_dir: Path, description: dict, resume: bool, same_backbone: Callable[[str], bool] | None = None
) -> bool:
    """Decide whether ``out_dir`` may hold this run. Returns True when it already holds it (resume).

    A folder whose run stopped before anything was saved (status not "finished", no checkpoint, no
    best/final prompt, no logged step: e.g. a template error on the first batch) holds nothing to keep or
    resume, so it is reused as if it were empty, whatever that run's settings were.

    Raises ConfigError (and touches nothing) when the folder holds another run, holds this run but
    ``resume`` is False, or holds other files. ``same_backbone(saved)`` decides whether the stored
    ``backbone`` fingerprint names this run's weights (older fingerprint formats, other dtypes); without it
    the strings are compared.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out dir {out_dir} is a file, not a folder; choose a new or empty folder")
    run_file = out_dir / RUN
    if not run_file.exists():
        if out_dir.exists() and any(
            not p.name.startswith(".tmp-") and p.name != LOCK for p in out_dir.iterdir()
        ):
            raise ConfigError(
                f"out dir {out_dir} is not empty and holds no {RUN}; choose a new or empty folder"
            )
        return False
    try:
        doc = json.loads(run_file.read_text())
        stored = doc["run"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{run_file} is unreadable; choose another out dir") from None
    if doc.get("status") != "finished" and nothing_saved(out_dir):
        return False
    new = normalize(description)
    if same_backbone is not None and "backbone" in stored and same_backbone(stored["backbone"]):
        new["backbone"] = stored["backbone"]  # the same weights under an older fingerprint format
    diff = differences(stored, new)
    if diff:
        raise ConfigError(
            f"out dir {out_dir} holds another run (differs in {'; '.join(diff[:4])}); choose another out dir"
        )
    if not resume:
        raise ConfigError(
            f"out dir {out_dir} already holds this run ({stopped_how(doc)}); pass --resume (resume=True) to "
            "continue it, or choose another out dir"
        )
    return True


class Ownership:
    """What :func:`owning` yields. The trainer sets ``started`` once run.json says "running" (from then on a
    failure is recorded there); ``note`` says, when set, how the folder's previous run stopped unfinished."""

    def __init__(self, note: str | None):
        self.started, self.note = False, note


@contextlib.contextmanager
def owning(out_dir: Path, acc: Any, record: Callable[..., None]) -> Iterator[Ownership]:
    """Hold ``out_dir`` for one training on every rank of ``acc``, and record how the training ends.

    The main process takes the folder's lock (``files.runs.RunLock``); when it cannot, every rank raises the
    same ConfigError. A run.json left at "running" by a process that is gone is then recorded as "interrupted"
    (one whose owner still lives on this host is refused, naming its pid). When the body raises after
    ``started`` was set, ``record(status, error=...)`` writes "failed" (an exception) or "interrupted"
    (KeyboardInterrupt, SystemExit) before the exception goes on.
    """
    lock, refusal, note = None, None, None
    if acc.is_main_process:
        try:
            candidate = RunLock(out_dir)
            candidate.acquire()
            lock = candidate
            note = _settle(out_dir)
        except SoftPromptError as e:
            refusal = e
    if acc.num_processes > 1:  # every rank learns whether the main one could take the folder
        from accelerate.utils import broadcast_object_list

        message = broadcast_object_list([None if refusal is None else str(refusal)])[0]
        refusal = refusal or (ConfigError(message) if message is not None else None)
    if refusal is not None:
        if lock is not None:
            lock.release()
        raise refusal
    own = Ownership(note)
    try:
        yield own
    except BaseException as e:
        if own.started:
            status = "failed" if isinstance(e, Exception) else "interrupted"
            with contextlib.suppress(Exception):  # (a full disk: the error itself goes on, unmasked)
                record(status, error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        raise
    finally:
        if lock is not None:
            lock.release()


def _settle(out_dir: Path) -> str | None:
    """Under the folder's lock: record a "running" run.json whose owner is gone as "interrupted"; refuse one
    whose owner is alive on this host (it trains without the lock: an older softprompt). Returns a note on how
    the folder's run stopped when it did not finish (said when it is resumed)."""
    doc = read_run(out_dir)
    if doc is None or doc.get("status") in (None, "finished"):
        return None
    owner = doc.get("owner")
    if doc.get("status") == "running":
        if liveness(owner) == "alive" and isinstance(owner, dict) and owner.get("pid") != os.getpid():
            raise ConfigError(
                f"out dir {out_dir} is in use: {who(owner)} is training into it (run.json says running); "
                "wait for it to finish or stop it, or choose another out dir"
            )
        doc.update(status="interrupted", updated=_now())
        atomic_write_text(out_dir / RUN, json.dumps(doc, indent=2) + "\n")
    return f"run {out_dir} {stopped_how(doc)}"


def resume_note(out_dir: Path, resuming: bool, note: str | None, ckpt: Path | None) -> str | None:
    """What ``train(resume=True)`` says: that there was nothing to resume, or how the run it continues stopped
    and where it continues from (None: it continues a run that stopped cleanly, nothing to say)."""
    if not resuming:
        return (
            f"nothing to resume in {out_dir} (it is new, empty, or its run saved nothing before it stopped): "
            "starting this run from step 0"
        )
    if note is None:
        return None
    where = f"its checkpoint {ckpt.name}" if ckpt is not None else "step 0 (it saved no checkpoint)"
    return f"{note}; resuming it from {where}"


def nothing_saved(out_dir: Path) -> bool:
    """True when ``out_dir`` holds no checkpoint, no best/final prompt and no logged step."""
    from softprompt.files.checkpoint import DIR, LATEST

    if (out_dir / DIR / LATEST).exists() or any((out_dir / kind).is_dir() for kind in ("best", "final")):
        return False
    log = out_dir / LOG
    return not (log.exists() and log.read_text().strip())


def differences(old: object, new: object, where: str = "") -> list[str]:
    """Human-readable paths where two JSON values differ: ``train.lr: 0.03 -> 0.1``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            path = f"{where}.{key}" if where else str(key)
            if key not in new or key not in old:
                out.append(f"{path}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}")
            else:
                out += differences(old[key], new[key], path)
        return out
    return [] if old == new else [f"{where or 'value'}: {old!r} -> {new!r}"]


def write_run(
    out_dir: Path,
    description: dict,
    *,
    status: str,
    result: dict | None = None,
    world_size: int = 1,
    sharding: dict | None = None,
    error: str | None = None,
) -> None:
    previous = {}
    if (out_dir / RUN).exists():
        previous = json.loads((out_dir / RUN).read_text())
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "run": normalize(description),
        "created": previous.get("created") or _now(),
        "updated": _now(),
        "status": status,
        "owner": current_owner(),
        "world_size": world_size,
        "softprompt": _version(),
    }
    if sharding is not None:
        doc["sharding"] = sharding  # how the frozen backbone was split over the processes (FSDP)
    if result is not None:
        doc["result"] = normalize(result)
    if error is not None:
        doc["error"] = " ".join(error.split())[:500]
    atomic_write_text(out_dir / RUN, json.dumps(doc, indent=2) + "\n")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("softprompt")
    except PackageNotFoundError:
        return "unknown"


class Log:
    """Appends JSON lines to ``log.jsonl`` (main process only; a no-op elsewhere)."""

    def __init__(self, out_dir: Path, *, enabled: bool, keep_until: int | None):
        self.path, self.enabled = out_dir / LOG, enabled
        if enabled:
            self._truncate(keep_until)

    def _truncate(self, keep_until: int | None) -> None:
        """Drop lines a killed run wrote after its last checkpoint (they are written again on resume)."""
        if not self.path.exists():
            return
        kept = []
        if keep_until is not None:
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= keep_until:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    break  # a line cut by the kill: everything after it is gone too
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with write_errors_named(self.path), open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_log(out_dir: str | Path) -> list[dict]:
    """The records of a run's log.jsonl."""
    path = Path(out_dir) / LOG
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
