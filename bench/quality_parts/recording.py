"""The results document of the quality benchmark: resumable, and safe for several benchmark processes at once.

Every number a part produces goes through :class:`Recorder`, which rewrites quality.json and quality.md after
each run, so an interrupted benchmark still leaves valid files with what it finished. A later run with the
same preset and seeds resumes: a part whose config is unchanged keeps its runs, and each part skips the
(label, library, seed) runs already recorded (:meth:`Recorder.done`). Two processes may fill different parts
of one document side by side (e.g. ``--only facts`` and ``--only rt-smollm`` with one torch thread each):
``save`` takes a file lock, re-reads the file and writes back the parts this process started over it, and
two processes may fill one part (different ``--methods`` or ``--libraries``): a part both started gains the
runs the other recorded.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock


@dataclass
class Recorder:
    """The results document; ``save`` rewrites JSON + Markdown (the caller passes the Markdown renderer)."""

    json_path: Path
    render: object  # callable(data) -> markdown text
    data: dict = field(default_factory=dict)
    owned: set = field(default_factory=set)
    """Parts this process started: ``save`` writes these and takes every other part from the file."""

    def part(self, name: str) -> dict:
        return self.data["parts"].setdefault(name, {"status": "running", "runs": []})

    def start(self, name: str, config: dict) -> dict:
        """The part's record. An earlier record whose config is the same but for ``config["methods"]`` is
        resumed: it keeps its zero-shot results and the runs of every method whose own settings are unchanged."""
        self.owned.add(name)
        config = json.loads(json.dumps(config, default=str))
        old = self.data["parts"].get(name)
        if old is not None and _base(old.get("config", {})) == _base(config):
            was, now_ = old["config"].get("methods", {}), config.get("methods", {})
            kept = [r for r in old.get("runs", []) if was.get(r["label"]) == now_.get(r["label"])]
            old.update(config=config, runs=kept, status="running", resumed=now())
            print(f"  [{name}] resuming: {len(kept)} run(s) already recorded", flush=True)
        else:
            if old is not None and old.get("runs"):
                print(
                    f"  [{name}] its budget changed: {len(old['runs'])} recorded run(s) set aside", flush=True
                )
            self.data["parts"][name] = {"status": "running", "started": now(), "config": config, "runs": []}
        self.save()
        return self.data["parts"][name]

    def done(self, name: str, label: str, library: str, seed: int) -> dict | None:
        """The recorded run of ``label`` in ``library`` for ``seed``, if there is one (then it is skipped)."""
        for r in self.part(name)["runs"]:
            if (r["label"], r["library"], r["seed"]) == (label, library, seed):
                return r
        return None

    def add_run(self, name: str, run: dict) -> None:
        run.setdefault("commit", commit())
        run.setdefault("finished", now())
        self.part(name)["runs"].append(run)
        self.save()
        print(
            f"  [{name}] {run['label']:<38} {run['library']:<10} seed {run['seed']}: "
            f"{run['metric']} {run['value']:.3f}  ({run['params']:,} params, train {run['train_s']:.0f} s, "
            f"eval {run['eval_s']:.0f} s)",
            flush=True,
        )

    def save(self) -> None:
        from softprompt.io.atomic import atomic_write_text

        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.json_path.with_suffix(".lock"))):
            disk = read_document(self.json_path)
            if disk and same_run(disk, self.data):  # another process's parts, as it last wrote them
                for name, part in disk.get("parts", {}).items():
                    if name not in self.owned:
                        self.data["parts"][name] = part
                    else:
                        self._merge_runs(name, part)
            atomic_write_text(self.json_path, json.dumps(self.data, indent=1, default=str) + "\n")
            atomic_write_text(self.json_path.with_suffix(".md"), self.render(self.data))

    def _merge_runs(self, name: str, disk: dict) -> None:
        """Runs another process recorded in a part this process also fills (e.g. ``--methods`` A and B of
        rt-smollm side by side): kept when their method's settings equal this process's config of it."""
        mine = self.data["parts"].get(name)
        if mine is None or _base(disk.get("config", {})) != _base(mine.get("config", {})):
            return
        was, now_ = disk["config"].get("methods", {}), mine["config"].get("methods", {})
        have = {(r["label"], r["library"], r["seed"]) for r in mine["runs"]}
        for r in disk.get("runs", []):
            key = (r["label"], r["library"], r["seed"])
            if key not in have and was.get(r["label"]) == now_.get(r["label"]):
                mine["runs"].append(r)
                have.add(key)


def _base(config: dict) -> dict:
    """What must be equal for a part's recorded runs to stand: its budget, not its methods (compared per
    method) nor its seeds (each run records its own, so seeds may be added to a finished part)."""
    return {k: v for k, v in config.items() if k not in ("methods", "seeds")}


def read_document(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def same_run(old: dict, new: dict) -> bool:
    """Whether the document ``old`` (on disk) and ``new`` (this process's) are the same benchmark: the same preset
    and ``old``'s seeds among ``new``'s (seeds added to a preset keep its runs; each run records its seed). Then
    they merge. Budgets are compared per part (each part's config, in :meth:`Recorder.start`)."""
    same = all(old.get(k) == new.get(k) for k in ("format", "preset"))
    return same and set(old.get("seeds") or []) <= set(new.get("seeds") or [])


def run_record(
    *,
    label: str,
    library: str,
    method: str,
    seed: int,
    metric: str,
    value: float,
    params: int,
    train_s: float = 0.0,
    steps: int = 0,
    eval_s: float = 0.0,
    n_eval: int = 0,
    **extra,
) -> dict:
    """One trained-and-scored (or zero-shot) configuration."""
    return {
        "label": label,
        "library": library,
        "method": method,
        "seed": seed,
        "metric": metric,
        "value": float(value),
        "params": int(params),
        "train_s": round(train_s, 2),
        "steps": steps,
        "step_s": round(train_s / steps, 3) if steps else None,
        "eval_s": round(eval_s, 2),
        "eval_examples": n_eval,
        **extra,
    }


# ----- machine ---------------------------------------------------------------------------------------------
def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


_COMMIT: list[str] = []


def commit() -> str:
    """The checkout's git commit (``+dirty`` with uncommitted changes): which code produced a run."""
    if not _COMMIT:
        root = Path(__file__).resolve().parents[2]
        try:
            head = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            dirty = subprocess.run(
                [
                    "git",
                    "-C",
                    str(root),
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    ".",
                    ":!bench/results",
                ],
                capture_output=True,
                text=True,
            ).stdout.strip()
            _COMMIT.append((head or "unknown") + ("+dirty" if dirty else ""))
        except OSError:
            _COMMIT.append("unknown")
    return _COMMIT[0]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "load_avg_at_start": load,
    }


def versions() -> dict:
    import peft
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
