"""What a run has done so far, and the checkpoints that let it go back there.

``RunState`` is the loop's bookkeeping (step, time, best and last evaluations, early stopping); ``save`` writes
it with the trainable modules, optimizer, scheduler and every rank's RNG state (``softprompt.files.checkpoint``),
``restore`` puts all of it back, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from softprompt.files import checkpoint

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.distributed.checkpoint.stateful import Stateful


@dataclass
class RunState:
    """The training loop's counters; ``counters`` is what a checkpoint's trainer.json records of them."""

    step: int = 0
    """Optimizer steps done."""
    elapsed0: float = 0.0
    """Training seconds spent before this process started (by the run it resumes)."""
    t0: float = 0.0
    """``time.perf_counter()`` when this process started training."""
    stopped: bool = False
    """Early stopping triggered."""
    bad_evals: int = 0
    """Evaluations in a row that improved no prompt's main metric."""
    best: dict[str, float] = field(default_factory=dict)
    """Per prompt, its best main metric so far."""
    best_step: dict[str, int] = field(default_factory=dict)
    """Per prompt, the step of its best evaluation."""
    best_metrics: dict[str, dict] = field(default_factory=dict)
    """Per prompt, every metric of its best evaluation."""
    last_metrics: dict[str, dict] = field(default_factory=dict)
    """Per prompt, every metric of its latest evaluation."""
    last_loss: float | None = None
    """The mean training loss of the latest logged window."""

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def record_eval(self, prompt: str, score: float, metrics: dict) -> bool:
        """Note ``prompt``'s evaluation; True when its main metric ``score`` is its best so far."""
        self.last_metrics[prompt] = metrics
        best = self.best.get(prompt, math.nan)
        if score > best or (math.isnan(best) and not math.isnan(score)) or prompt not in self.best:
            self.best[prompt], self.best_step[prompt] = score, self.step
            self.best_metrics[prompt] = metrics
            return True
        return False

    def end_eval(self, improved: bool, patience: int | None) -> None:
        """Count an evaluation that improved no prompt; stop after ``patience`` such in a row."""
        self.bad_evals = 0 if improved else self.bad_evals + 1
        if patience is not None and self.bad_evals >= patience:
            self.stopped = True

    def counters(self, *, epoch: float, world_size: int) -> dict:
        return {
            "epoch": epoch,
            "best": self.best,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "last_metrics": self.last_metrics,
            "bad_evals": self.bad_evals,
            "stopped": self.stopped,
            "elapsed": self.elapsed(),
            "last_loss": self.last_loss,
            "world_size": world_size,
        }

    def load(self, step: int, c: dict) -> None:
        """Take a checkpoint's step and counters (``t0`` stays: this process's start)."""
        self.step, self.elapsed0 = step, float(c["elapsed"])
        self.best, self.best_step, self.best_metrics = c["best"], c["best_step"], c["best_metrics"]
        self.last_metrics, self.bad_evals, self.stopped = c["last_metrics"], c["bad_evals"], c["stopped"]
        self.last_loss = c["last_loss"]


def save(
    out: Path,
    state: RunState,
    acc: Accelerator,
    modules: dict[str, nn.Module],
    opt: Stateful,
    sched: Stateful,
    *,
    epoch: float,
) -> None:
    """Write checkpoint ``step-<state.step>`` from the main process, with every rank's RNG state; all wait."""
    rng = [checkpoint.rng_state()]
    if acc.num_processes > 1:
        from accelerate.utils import gather_object

        rng = gather_object(rng)
    if acc.is_main_process:
        checkpoint.save_checkpoint(
            out,
            state.step,
            modules=modules,
            optimizer=opt,
            scheduler=sched,
            counters=state.counters(epoch=epoch, world_size=acc.num_processes),
            rng=rng,
        )
    acc.wait_for_everyone()


def restore(
    path: Path,
    state: RunState,
    acc: Accelerator,
    modules: dict[str, nn.Module],
    opt: Stateful,
    sched: Stateful,
) -> None:
    """Load checkpoint ``path`` into the modules, optimizer, scheduler, ``state`` and this rank's RNG."""
    ckpt = checkpoint.load_checkpoint(path)
    checkpoint.restore(ckpt, modules, opt, sched)
    with checkpoint.named_if_corrupt(path / "trainer.json"):
        state.load(ckpt.step, ckpt.counters)
    with checkpoint.named_if_corrupt(path / "rng.json"):
        checkpoint.set_rng_state(ckpt.rng[acc.process_index % len(ckpt.rng)])
