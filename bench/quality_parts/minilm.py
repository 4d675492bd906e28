"""all-MiniLM-L6-v2 (a bare BERT encoder): deep prompts against full fine-tuning.

* ``rt-minilm``: Rotten Tomatoes with a mean-pooled classification head: P-tuning v2 and prefix tuning
  (softprompt; backbone frozen, prompt + head trained) vs full fine-tuning.
* ``punct``: punctuation restoration with a token head: P-tuning v2 vs full fine-tuning (token F1).

Full fine-tuning is full_ft.train_full (plain torch): ``AutoModel`` + the same head class (pooling + dropout +
linear), every weight trainable, AdamW (backbone 5e-5, head 1e-3), the same linear schedule, clipping,
examples, order and batch as the prompt runs; batches, gold labels and metrics come from the same task object.
"""

from __future__ import annotations

import torch

from softprompt.methods import METHODS

from .common import MINILM, Context, run_record, slug, timed_predict, train_prompts
from .full_ft import FullFT, train_full

VIRTUAL = 16
POOL = "mean"
"""all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder."""
FT_LR, FT_HEAD_LR = 5e-5, 1e-3

V2_LR = METHODS["p-tuning-v2"].train_with_head["lr"]
"""The library's default for a prompt trained with a new head, from the MiniLM sweep (lr_sweep-minilm.md)."""
PREFIX = ("prefix tuning (MLP 512)", "prefix-tuning", {"reparameterize": True, "mlp_hidden": 512}, 5e-3)


def prompts(p, part: str, seed: int, chosen: int | None) -> list[tuple[str, str, dict, float]]:
    """[(label, method, fields, lr)] of one seed: P-tuning v2 at every compared length on the first seed, at
    the length best on its validation (``chosen``) on the others; prefix tuning on rt-minilm if asked."""
    lengths = p.mini_lengths if chosen is None else (chosen,)
    out = [(v2_label(p, n), "p-tuning-v2", {"num_virtual_tokens": n}, V2_LR) for n in lengths]
    return out + ([PREFIX] if part == "rt-minilm" and p.mini_prefix else [])


def v2_label(p, n: int) -> str:
    return "P-tuning v2" if len(p.mini_lengths) == 1 else f"P-tuning v2 ({n} tokens)"


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
    test, val = data.test[:n_eval], data.validation[: p.mini_val]
    steps = p.mini_budget(len(data.train))
    ctx.recorder.start(
        part,
        {
            "model": MINILM,
            "dataset": dataset,
            "steps": steps,
            "epochs": p.mini_epochs or None,
            "batch": p.mini_batch,
            "test_examples": len(test),
            "validation_examples": len(val),
            "eval_every": p.mini_eval_every,
            "patience": p.mini_patience,
            "lengths": list(p.mini_lengths),
            "pool": POOL if part == "rt-minilm" else "token",
            "prompt_methods": {
                label: {"method": m, **f, "lr": lr} for label, m, f, lr in prompts(p, part, 0, None)
            },
            "full_ft": {"lr_backbone": FT_LR, "lr_head": FT_HEAD_LR, "weight_decay": 0.0},
        },
    )
    run = dict(test=test, val=val, steps=steps)
    chosen = None
    for seed in ctx.seeds:  # the first prompt run, full fine-tuning, then the other lengths / methods
        first, *rest = prompts(p, part, seed, chosen)
        for item in [first, "full fine-tuning", *rest]:
            if item == "full fine-tuning":
                if not ctx.recorder.done(part, item, "torch", seed):
                    _full_ft_run(ctx, part, model, data, run, seed)
            elif not ctx.recorder.done(part, item[0], "softprompt", seed):
                _prompt_run(ctx, part, model, data, run, *item, seed)
        if chosen is None and len(p.mini_lengths) > 1:
            chosen = _best_length(ctx, part, p, seed)


def _best_length(ctx: Context, part: str, p, seed: int) -> int:
    """The compared length whose run scored best on validation at its last check (ties: the shortest)."""
    score = {}
    for n in p.mini_lengths:
        r = ctx.recorder.done(part, v2_label(p, n), "softprompt", seed)
        score[n] = r["curve"][-1]["value"] if r and r.get("curve") else float("-inf")
    best = max(p.mini_lengths, key=lambda n: (score[n], -n))
    ctx.recorder.part(part)["chosen_length"] = {"length": best, "validation": score, "on_seed": seed}
    print(f"  [{part}] P-tuning v2 length {best} chosen on validation {score}", flush=True)
    return best


def _task(model, spec, seed: int):
    from softprompt.tasks import make_task

    torch.manual_seed(seed)  # the head's initial weights
    if spec.task == "labeling":
        return make_task(model, spec)
    return make_task(model, spec, template="{text}", head=POOL)


def _prompt_run(ctx, part, model, data, run, label, method, fields, lr, seed) -> None:
    from softprompt.methods import make_config
    from softprompt.training import TrainJob

    name, test = slug(label), run["test"]
    if name in model.bank:
        model.bank.remove(name)
    model.add_prompt(name, make_config(method, **{"num_virtual_tokens": VIRTUAL, **fields}), seed=seed)
    task = _task(model, data.spec, seed)
    job = TrainJob(prompt=name, task=task, train=data.train, validation=run["val"])
    result, losses, curve = train_prompts(
        model,
        job,
        steps=run["steps"],
        batch=ctx.preset.mini_batch,
        lr=lr,
        seed=seed,
        out=ctx.work / f"{part}-{name}-{seed}",
        eval_every=ctx.preset.mini_eval_every if run["val"] else 0,
        patience=ctx.preset.mini_patience if run["val"] else None,
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
            stopped_early=result.stopped_early,
            curve=[{"step": c["step"], "value": c[name]} for c in curve],
        ),
    )


# ----- full fine-tuning ------------------------------------------------------------------------------------
def _full_ft_run(ctx, part, model, data, run, seed) -> None:
    """Every weight of MiniLM + a fresh head (full_ft.train_full), on the prompt runs' batches, with the same
    validation checks and early stopping as the prompt runs."""
    p = ctx.preset
    task = _task(model, data.spec, seed)  # fresh head of the same class, seeded like the prompt runs' heads
    spec = FullFT(
        backbone=MINILM,
        steps=run["steps"],
        batch=p.mini_batch,
        seed=seed,
        lr=FT_LR,
        head_lr=FT_HEAD_LR,
        eval_every=p.mini_eval_every,
        patience=p.mini_patience,
    )
    out = train_full(task, data.train, run["val"], run["test"], spec)
    ctx.recorder.add_run(
        part,
        run_record(
            label="full fine-tuning",
            library="torch",
            method="full-ft",
            seed=seed,
            metric=task.main_metric,
            lr=FT_LR,
            **out,
        ),
    )
