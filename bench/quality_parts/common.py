"""Shared pieces of the quality benchmark: presets, the run context, and training / scoring one softprompt prompt.

Results go through :class:`recording.Recorder` (resumable; see recording.py).
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .recording import Recorder, machine, now, run_record, versions  # noqa: F401  (re-exported for parts)

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
    facts_eval: int | None
    """Test facts scored, taken round-robin over the relations (the test split has 106); None = all."""
    facts_sets: int
    """Relation-worded template sets scored besides the generic template (0..4)."""
    head_steps: int
    head_batch: int
    head_eval: int
    head_max_length: int
    """Article + template + target positions; the article is cut to fit (the lead carries the headline)."""
    rt_methods: tuple[str, ...] = ()
    """Labels of rt_smollm.METHODS trained here; () = all of them."""
    rt_val: int = 0
    """Validation reviews scored every ``rt_eval_every`` steps for each softprompt run's validation curve."""
    rt_eval_every: int = 0
    mini_epochs: float = 0.0
    """MiniLM budget in epochs of the training split (rounded up to steps); 0 = ``mini_steps``."""
    mini_val: int = 0
    """Validation examples scored every ``mini_eval_every`` steps (curve and early stopping); 0 = none."""
    mini_eval_every: int = 0
    mini_patience: int | None = None
    """Stop a MiniLM run after this many validation checks without a new best (prompt runs and full FT)."""
    mini_lengths: tuple[int, ...] = (16,)
    """P-tuning v2 prompt lengths compared on the first seed; the others train the length best on its
    validation (the last check's score)."""
    mini_prefix: bool = True
    """Also train prefix tuning (MLP) on rt-minilm."""
    facts_val: int = 0
    """Validation facts scored every ``facts_eval_every`` steps for the curve."""
    facts_eval_every: int = 0
    head_val: int = 0
    head_eval_every: int = 0

    def mini_budget(self, n_train: int) -> int:
        """MiniLM steps for a training split of ``n_train`` examples."""
        if self.mini_epochs:
            return math.ceil(self.mini_epochs * n_train / self.mini_batch)
        return self.mini_steps


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
    # the budgets: SmolLM2 >= 200 steps per method at its defaults (softprompt and PEFT), MiniLM up to
    # 10 epochs with early stopping on validation, facts on all 106 held-out facts, headlines on 100 articles;
    # many hours on 2 cores (``--estimate``), resumable run by run (recording.py)
    "standard": Preset(
        name="standard",
        seeds=(0, 1, 2),
        rt_steps=200,
        rt_batch=8,
        rt_eval=400,
        rt_methods=(
            "prefix tuning (defaults: real words + MLP)",
            "P-tuning v2 (defaults: real words)",
            "prompt tuning (defaults)",
            "P-tuning (defaults)",
            "multitask prompt tuning (defaults)",
            "adaption prompt (defaults)",
        ),
        rt_val=100,
        rt_eval_every=25,
        mini_steps=0,
        mini_epochs=10.0,
        mini_batch=16,
        mini_eval=1000,
        punct_eval=998,
        mini_val=300,
        mini_eval_every=200,
        mini_patience=4,
        mini_lengths=(16, 32, 64),
        mini_prefix=False,
        facts_steps=100,
        facts_batch=2,
        facts_eval=None,
        facts_sets=4,
        facts_val=21,
        facts_eval_every=20,
        head_steps=100,
        head_batch=8,
        head_eval=100,
        head_max_length=128,
        head_val=16,
        head_eval_every=25,
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
    methods: tuple[str, ...] = ()
    """Labels this process trains (``--methods``); () = the preset's. The part's recorded config still lists
    every preset method, so the other methods' runs are kept."""
    libraries: tuple[str, ...] = ("softprompt", "peft")
    """Libraries this process trains (``--libraries``), in this order."""


# ----- softprompt side -------------------------------------------------------------------------------------
def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def train_prompts(
    model,
    jobs,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    out: Path,
    eval_every: int = 0,
    patience: int | None = None,
    head_lr: float | None = None,
):
    """Train the jobs' prompts with the library's loop (the linear schedule with 6 % warmup, clipping at 1.0;
    the final prompt is scored; task heads at ``head_lr`` when given, else at ``lr``). Jobs with validation examples are checked every ``eval_every`` steps and at
    the end, which gives their validation curve (and early stopping with ``patience``).

    Returns:
        (TrainResult, per-step losses, curve: ``[{"step": k, "<prompt>": main metric, ...}, ...]``).
    """
    from softprompt.training import TrainConfig, read_log, train

    config = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        eval_every=eval_every,
        eval_examples=None,
        save_every=0,
        seed=seed,
        log_every=1,
        patience=patience,
        head_lr=head_lr,
    )
    result = train(model, jobs, config, fresh_dir(out), progress=False)
    log = read_log(out)
    losses = [round(e["loss"], 4) for e in log if "loss" in e]
    metric = {j.prompt: j.task.main_metric for j in (jobs if isinstance(jobs, list) else [jobs])}
    curve = [
        {"step": e["step"], **{p: round(m[metric[p]], 4) for p, m in e["eval"].items()}}
        for e in log
        if "eval" in e
    ]
    shutil.rmtree(out, ignore_errors=True)
    return result, losses, curve


def timed_predict(model, task, examples: list[dict], prompt: str | None, batch_size: int):
    """(predictions, metrics, seconds) of ``prompt`` on ``examples``."""
    from softprompt.training import predict

    t0 = time.perf_counter()
    preds = predict(model, task, examples, prompt, batch_size)
    return preds, task.metrics(preds, task.gold(examples)), time.perf_counter() - t0


def label_words(task) -> list[str]:
    """The verbalizer's words in label order (for init="labels")."""
    return [w for words in task.verbalizer.label_words.values() for w in words]


def preset_dict(preset: Preset) -> dict:
    return asdict(preset)
