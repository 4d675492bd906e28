"""all-MiniLM-L6-v2 (a bare BERT encoder): deep prompts against full fine-tuning.

* ``rt-minilm``: Rotten Tomatoes with a mean-pooled classification head: P-tuning v2 and prefix tuning
  (softprompt; backbone frozen, prompt + head trained) vs full fine-tuning.
* ``punct``: punctuation restoration with a token head: P-tuning v2 vs full fine-tuning (token F1).

Full fine-tuning is written here with plain torch: ``AutoModel`` + the same head class (pooling + dropout +
linear), every weight trainable, AdamW (backbone 5e-5, head 1e-3), the same linear schedule, clipping,
examples, order and batch as the prompt runs; batches, gold labels and metrics come from the same task object.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .common import MINILM, Context, run_record, slug, timed_predict, train_prompts

VIRTUAL = 16
POOL = "mean"
"""all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder."""
FT_LR, FT_HEAD_LR = 5e-5, 1e-3

# part -> [(label, method, fields, lr)]
PROMPTS = {
    "rt-minilm": [
        ("P-tuning v2", "p-tuning-v2", {}, 1e-2),
        ("prefix tuning (MLP 512)", "prefix-tuning", {"reparameterize": True, "mlp_hidden": 512}, 5e-3),
    ],
    "punct": [("P-tuning v2", "p-tuning-v2", {}, 1e-2)],
}


def run_rt(ctx: Context) -> None:
    _run(ctx, "rt-minilm", "rotten-tomatoes", ctx.preset.mini_eval)


def run_punct(ctx: Context) -> None:
    _run(ctx, "punct", "punctuation", ctx.preset.punct_eval)


def _run(ctx: Context, part: str, dataset: str, n_eval: int) -> None:
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset

    p = ctx.preset
    model = load_model(MINILM)
    data = load_dataset(dataset)
    test = data.test[:n_eval]
    ctx.recorder.start(
        part,
        {
            "model": MINILM,
            "dataset": dataset,
            "steps": p.mini_steps,
            "batch": p.mini_batch,
            "test_examples": len(test),
            "virtual_tokens": VIRTUAL,
            "pool": POOL if part == "rt-minilm" else "token",
            "prompt_methods": {label: {"method": m, **f, "lr": lr} for label, m, f, lr in PROMPTS[part]},
            "full_ft": {"lr_backbone": FT_LR, "lr_head": FT_HEAD_LR, "weight_decay": 0.0},
        },
    )
    for seed in ctx.seeds:
        for label, method, fields, lr in PROMPTS[part]:
            _prompt_run(ctx, part, model, data, test, label, method, fields, lr, seed)
        _full_ft_run(ctx, part, model, data, test, seed)


def _task(model, spec, seed: int):
    from softprompt.tasks import make_task

    torch.manual_seed(seed)  # the head's initial weights
    if spec.task == "labeling":
        return make_task(model, spec)
    return make_task(model, spec, template="{text}", head=POOL)


def _prompt_run(ctx, part, model, data, test, label, method, fields, lr, seed) -> None:
    from softprompt.methods import make_config
    from softprompt.training import TrainJob

    name = slug(label)
    if name in model.bank:
        model.bank.remove(name)
    model.add_prompt(name, make_config(method, num_virtual_tokens=VIRTUAL, **fields), seed=seed)
    task = _task(model, data.spec, seed)
    job = TrainJob(prompt=name, task=task, train=data.train, validation=[])
    result, losses = train_prompts(
        model,
        job,
        steps=ctx.preset.mini_steps,
        batch=ctx.preset.mini_batch,
        lr=lr,
        seed=seed,
        out=ctx.work / f"{part}-{name}-{seed}",
    )
    _, metrics, secs = timed_predict(model, task, test, name, 32)
    model.bank.remove(name)
    ctx.recorder.add_run(
        part,
        run_record(
            label=label,
            library="softprompt",
            method=method,
            seed=seed,
            metric=task.main_metric,
            value=metrics[task.main_metric],
            params=result.trainable_params,
            train_s=result.train_time_s,
            steps=result.steps,
            eval_s=secs,
            n_eval=len(test),
            lr=lr,
            metrics=metrics,
            losses=losses[-5:],
        ),
    )


# ----- full fine-tuning ------------------------------------------------------------------------------------
def _full_ft_run(ctx, part, model, data, test, seed) -> None:
    """Every weight of MiniLM + a fresh head, on the prompt runs' batches (the task only encodes and scores)."""
    from accelerate.utils import set_seed
    from transformers import AutoModel, get_scheduler

    from softprompt.files.assets import resolve_model
    from softprompt.training import TrainJob
    from softprompt.training.batches import Plan

    p = ctx.preset
    task = _task(model, data.spec, seed)  # fresh head of the same class, seeded like the prompt runs' heads
    encoder = AutoModel.from_pretrained(resolve_model(MINILM), dtype=torch.float32)
    head = task.head
    params = [*encoder.parameters(), *head.parameters()]
    set_seed(seed)
    opt = torch.optim.AdamW(
        [
            {"params": list(encoder.parameters()), "lr": FT_LR},
            {"params": list(head.parameters()), "lr": FT_HEAD_LR},
        ],
        weight_decay=0.0,
    )
    sched = get_scheduler(
        "linear", opt, num_warmup_steps=round(0.06 * p.mini_steps), num_training_steps=p.mini_steps
    )
    plan = Plan([TrainJob(prompt="ft", task=task, train=data.train, validation=[])], p.mini_batch, seed)
    encoder.train(), head.train()
    t0, losses = time.perf_counter(), []
    for k in range(p.mini_steps):
        batch = task.collate(plan.micro_batch(k)[0].examples)
        loss = _loss(task, _logits(encoder, head, batch), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        sched.step()
        losses.append(round(loss.item(), 4))
    train_s = time.perf_counter() - t0
    encoder.eval(), head.eval()
    t0, preds = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(test), 32):
            batch = task.collate(test[i : i + 32])
            preds += _predict(task, _logits(encoder, head, batch), batch)
    metrics = task.metrics(preds, task.gold(test))
    ctx.recorder.add_run(
        part,
        run_record(
            label="full fine-tuning",
            library="torch",
            method="full-ft",
            seed=seed,
            metric=task.main_metric,
            value=metrics[task.main_metric],
            params=sum(q.numel() for q in params),
            train_s=train_s,
            steps=p.mini_steps,
            eval_s=time.perf_counter() - t0,
            n_eval=len(test),
            lr=FT_LR,
            metrics=metrics,
            losses=losses[-5:],
        ),
    )


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
