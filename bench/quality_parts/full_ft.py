"""Full fine-tuning of a backbone + a fresh pooled / token head: the one full fine-tuning loop of the quality
benchmarks (``rt-minilm`` and ``punct`` in quality.py, the SmolLM2 parity run in parity.py).

Plain torch: ``AutoModel`` of the backbone + the task's own head (same class and init as the prompt runs'),
every weight trainable, AdamW (backbone ``lr``, head ``head_lr``), the library loop's linear schedule with 6 %
warmup and clipping at 1.0, on the prompt runs' batches (the library's ``Plan``: same examples, order and
batch); validation every ``eval_every`` steps and at the end, early stopping after ``patience`` checks without
a new best, as the library loop. The test score is that of the last weights, as on the prompt side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True, kw_only=True)
class FullFT:
    """One full fine-tuning run's budget and rates."""

    backbone: str
    """A built-in model name or a folder (``assets.resolve_model``)."""
    steps: int
    batch: int
    seed: int
    lr: float
    head_lr: float
    eval_every: int = 0
    patience: int | None = None


def train_full(task, train: list[dict], val: list[dict], test: list[dict], run: FullFT) -> dict:
    """Fine-tune every weight of ``run.backbone`` + ``task.head``; returns the ``run_record`` fields (metrics on
    ``test``, trainable parameters, train seconds without validation, steps, losses, validation curve)."""
    from accelerate.utils import set_seed
    from transformers import AutoModel, get_scheduler

    from softprompt.assets import resolve_model
    from softprompt.training import TrainJob
    from softprompt.training.batches import Plan

    encoder = AutoModel.from_pretrained(resolve_model(run.backbone), dtype=torch.float32)
    head = task.head
    params = [*encoder.parameters(), *head.parameters()]
    set_seed(run.seed)
    opt = torch.optim.AdamW(
        [
            {"params": list(encoder.parameters()), "lr": run.lr},
            {"params": list(head.parameters()), "lr": run.head_lr},
        ],
        weight_decay=0.0,
    )
    steps, every = run.steps, run.eval_every if val else 0
    sched = get_scheduler("linear", opt, num_warmup_steps=round(0.06 * steps), num_training_steps=steps)
    plan = Plan([TrainJob(prompt="ft", task=task, train=train, validation=[])], run.batch, run.seed)
    encoder.train(), head.train()
    t0, losses, curve, best, bad, eval_s = time.perf_counter(), [], [], float("-inf"), 0, 0.0
    for k in range(steps):
        batch = task.collate(plan.micro_batch(k)[0].examples)
        loss = _loss(task, _logits(encoder, head, batch), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        sched.step()
        losses.append(round(loss.item(), 4))
        if every and ((k + 1) % every == 0 or k + 1 == steps):  # as the library loop's checks
            t1 = time.perf_counter()
            score = score_full(task, encoder, head, val)[task.main_metric]
            eval_s += time.perf_counter() - t1
            curve.append({"step": k + 1, "value": round(score, 4)})
            best, bad = (score, 0) if score > best else (best, bad + 1)
            if run.patience is not None and bad >= run.patience:
                break
    train_s = time.perf_counter() - t0 - eval_s
    t0 = time.perf_counter()
    metrics = score_full(task, encoder, head, test)
    return {
        "metrics": metrics,
        "value": metrics[task.main_metric],
        "params": sum(q.numel() for q in params),
        "train_s": train_s,
        "steps": len(losses),
        "eval_s": time.perf_counter() - t0,
        "n_eval": len(test),
        "losses": losses[-5:],
        "stopped_early": len(losses) < steps,
        "curve": curve,
    }


def score_full(task, encoder, head, examples: list[dict]) -> dict:
    """The task's metrics of the fine-tuned encoder + head on ``examples`` (eval mode, restored after)."""
    encoder.eval(), head.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(examples), 32):
            batch = task.collate(examples[i : i + 32])
            preds += _predict(task, _logits(encoder, head, batch), batch)
    encoder.train(), head.train()
    return task.metrics(preds, task.gold(examples))


def _logits(encoder, head, batch) -> torch.Tensor:
    hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return head(hidden, batch["attention_mask"])  # (B, C) pooled, or (B, L, T) per token


def _loss(task, logits, batch) -> torch.Tensor:
    if logits.dim() == 3:  # token head, as LabelingTask.loss
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)
    return F.cross_entropy(logits.float(), batch["labels"])


def _predict(task, logits, batch) -> list:
    if logits.dim() == 2:
        return logits.argmax(-1).tolist()
    out = []  # as LabelingTask.predict: a word's tag is its first sub-token's; cut words count as "O"
    for row, first, n in zip(logits.argmax(-1).tolist(), batch["first"], batch["num_words"]):
        tags = [task.tags[row[j]] for j in first]
        out.append(tags + ["O"] * (n - len(tags)))
    return out
