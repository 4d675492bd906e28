"""Shared pieces of the quality benchmark: presets, the run context, and training / scoring one softprompt prompt.

Every number a part produces goes through :class:`Recorder`, which rewrites quality.json and quality.md after
each run, so an interrupted benchmark still leaves valid files with what it finished.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

SMOLLM = "smollm2-135m"
MINILM = "minilm-l6"


@dataclass(frozen=True, kw_only=True)
class Preset:
    """Budgets of one benchmark size (sizing rationale in bench/quality.py's docstring)."""

    name: str
    seeds: tuple[int, ...]
    rt_steps: int
    """SmolLM2 on Rotten Tomatoes: optimizer steps of every soft method, softprompt and PEFT alike."""
    rt_batch: int
    rt_eval: int
    """Test reviews every template / prompt is scored on (the first N of the test split)."""
    mini_steps: int
    """MiniLM (Rotten Tomatoes and punctuation): steps of P-tuning v2, prefix tuning and full fine-tuning."""
    mini_batch: int
    mini_eval: int
    punct_eval: int
    facts_steps: int
    facts_batch: int
    """Facts per relation per step (three relation prompts train together, one batch each)."""
    facts_eval: int
    """Test facts scored, taken round-robin over the relations (the test split has 42)."""
    facts_sets: int
    """Relation-worded template sets scored besides the generic template (0..4)."""
    head_steps: int
    head_batch: int
    head_eval: int
    head_max_length: int
    """Article + template + target positions; the article is cut to fit (the lead carries the headline)."""


PRESETS = {
    "smoke": Preset(
        name="smoke",
        seeds=(0,),
        rt_steps=2,
        rt_batch=8,
        rt_eval=8,
        mini_steps=2,
        mini_batch=16,
        mini_eval=8,
        punct_eval=8,
        facts_steps=2,
        facts_batch=1,
        facts_eval=3,
        facts_sets=1,
        head_steps=2,
        head_batch=4,
        head_eval=4,
        head_max_length=96,
    ),
    "small": Preset(
        name="small",
        seeds=(0,),
        rt_steps=30,
        rt_batch=8,
        rt_eval=200,
        mini_steps=150,
        mini_batch=16,
        mini_eval=400,
        punct_eval=300,
        facts_steps=6,
        facts_batch=1,
        facts_eval=9,
        facts_sets=4,
        head_steps=20,
        head_batch=8,
        head_eval=32,
        head_max_length=128,
    ),
    "standard": Preset(
        name="standard",
        seeds=(0, 1, 2),
        rt_steps=30,
        rt_batch=8,
        rt_eval=200,
        mini_steps=150,
        mini_batch=16,
        mini_eval=400,
        punct_eval=300,
        facts_steps=6,
        facts_batch=1,
        facts_eval=9,
        facts_sets=4,
        head_steps=20,
        head_batch=8,
        head_eval=32,
        head_max_length=128,
    ),
    "full": Preset(
        name="full",
        seeds=(0, 1, 2),
        rt_steps=36,
        rt_batch=8,
        rt_eval=300,
        mini_steps=200,
        mini_batch=16,
        mini_eval=500,
        punct_eval=400,
        facts_steps=8,
        facts_batch=1,
        facts_eval=15,
        facts_sets=4,
        head_steps=24,
        head_batch=8,
        head_eval=40,
        head_max_length=128,
    ),
}


@dataclass
class Context:
    """What a part gets: its budgets, the seeds, where to record results, a scratch folder for run dirs."""

    preset: Preset
    seeds: list[int]
    recorder: Recorder
    work: Path


# ----- recording -------------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """The results document; ``save`` rewrites JSON + Markdown (the caller passes the Markdown renderer)."""

    json_path: Path
    render: object  # callable(data) -> markdown text
    data: dict = field(default_factory=dict)

    def part(self, name: str) -> dict:
        return self.data["parts"].setdefault(name, {"status": "running", "runs": []})

    def start(self, name: str, config: dict) -> dict:
        self.data["parts"][name] = {"status": "running", "started": now(), "config": config, "runs": []}
        self.save()
        return self.data["parts"][name]

    def add_run(self, name: str, run: dict) -> None:
        self.part(name)["runs"].append(run)
        self.save()
        print(
            f"  [{name}] {run['label']:<38} {run['library']:<10} seed {run['seed']}: "
            f"{run['metric']} {run['value']:.3f}  ({run['params']:,} params, train {run['train_s']:.0f} s, "
            f"eval {run['eval_s']:.0f} s)",
            flush=True,
        )

    def save(self) -> None:
        from softprompt.files.atomic import atomic_write_text

        atomic_write_text(self.json_path, json.dumps(self.data, indent=1, default=str) + "\n")
        atomic_write_text(self.json_path.with_suffix(".md"), self.render(self.data))


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


# ----- softprompt side -------------------------------------------------------------------------------------
def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def train_prompts(model, jobs, *, steps: int, batch: int, lr: float, seed: int, out: Path):
    """Train the jobs' prompts with the library's loop: no validation (the final prompt is scored), the
    linear schedule with 6 % warmup, clipping at 1.0; returns (TrainResult, per-step losses)."""
    from softprompt.training import TrainConfig, read_log, train

    config = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        eval_every=0,
        eval_examples=None,
        save_every=0,
        seed=seed,
        log_every=1,
    )
    result = train(model, jobs, config, fresh_dir(out), progress=False)
    losses = [round(e["loss"], 4) for e in read_log(out) if "loss" in e]
    shutil.rmtree(out, ignore_errors=True)
    return result, losses


def timed_predict(model, task, examples: list[dict], prompt: str | None, batch_size: int):
    """(predictions, metrics, seconds) of ``prompt`` on ``examples``."""
    from softprompt.training import predict

    t0 = time.perf_counter()
    preds = predict(model, task, examples, prompt, batch_size)
    return preds, task.metrics(preds, task.gold(examples)), time.perf_counter() - t0


def label_words(task) -> list[str]:
    """The verbalizer's words in label order (for init="labels")."""
    return [w for words in task.verbalizer.label_words.values() for w in words]


# ----- machine ---------------------------------------------------------------------------------------------
def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


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


def preset_dict(preset: Preset) -> dict:
    return asdict(preset)
