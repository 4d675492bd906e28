"""Rotten Tomatoes on SmolLM2-135M: hand-written templates zero-shot, then each soft method in softprompt and
in PEFT, trained with the same recipe and scored on the same test reviews (label-word scoring after the
template "Review: {text}\\nSentiment: {mask}")."""

from __future__ import annotations

import torch

from softprompt.methods import METHODS as SP_METHODS

from . import peft_side
from .common import (
    SMOLLM,
    Context,
    label_words,
    run_record,
    slug,
    timed_predict,
    train_prompts,
)

PART = "rt-smollm"
VIRTUAL = 8
"""Virtual tokens (input tokens or prefix positions) of every method here."""

# label -> (softprompt method, softprompt fields, PEFT kind, learning rate, how the two inits differ)
METHODS: dict[str, tuple[str, dict, str, float, str]] = {
    "prompt tuning (random init)": (
        "prompt-tuning",
        {"init": "random"},
        "prompt-random",
        1e-2,
        "softprompt: uniform(-0.5, 0.5); PEFT RANDOM: nn.Embedding's N(0, 1)",
    ),
    "prompt tuning (label init)": (
        "prompt-tuning",
        {"init": "labels"},
        "prompt-labels",
        1e-2,
        (
            "softprompt init='labels': the label words' tokens, then tokens sampled from the vocabulary; "
            "PEFT TEXT init with the label words, repeated to fill"
        ),
    ),
    "P-tuning (MLP encoder)": (
        "p-tuning",
        {"encoder": "mlp", "encoder_hidden": 128},
        "p-tuning",
        3e-3,
        "softprompt embeddings from sampled vocabulary tokens (default); PEFT's N(0, 1)",
    ),
    "prefix tuning (MLP 512)": (
        "prefix-tuning",
        {"reparameterize": True, "mlp_hidden": 512, "init": "random"},
        "prefix",
        3e-3,
        (
            "both N(0, 1) embedding, as wide as one layer's keys (3 kv heads x 64 = 192 on SmolLM2), into "
            "Linear-Tanh-Linear: the same parameter count"
        ),
    ),
    "P-tuning v2 (no reparam.)": (
        "p-tuning-v2",
        {"dropout": 0.0, "init": "random"},
        "p-tuning-v2",
        1e-2,
        "both N(0, 1) keys/values",
    ),
    "prefix tuning (defaults: real words + MLP)": (
        "prefix-tuning",
        {},
        "prefix",
        SP_METHODS["prefix-tuning"].train["lr"],
        (
            "softprompt's defaults: the frozen model's keys/values for the label words and frequent tokens, "
            "plus a zero-started MLP offset; PEFT has no real-word prefix init (N(0, 1) through its MLP)"
        ),
    ),
    "P-tuning v2 (defaults: real words)": (
        "p-tuning-v2",
        {},
        "p-tuning-v2",
        SP_METHODS["p-tuning-v2"].train["lr"],
        "softprompt's defaults (real-word keys/values, no dropout); PEFT N(0, 1) keys/values",
    ),
    "prompt tuning (defaults)": (
        "prompt-tuning",
        {},
        "prompt-vocab",
        SP_METHODS["prompt-tuning"].train["lr"],
        "both start from tokens sampled from the vocabulary (softprompt init='vocab'; PEFT SAMPLE_VOCAB)",
    ),
    "P-tuning (defaults)": (
        "p-tuning",
        {},
        "p-tuning-lstm",
        SP_METHODS["p-tuning"].train["lr"],
        (
            "softprompt's defaults: a bi-LSTM + MLP encoder as wide as the model (576) over sampled vocabulary "
            "embeddings; PEFT's LSTM encoder of the same width over N(0, 1) embeddings"
        ),
    ),
    "multitask prompt tuning (defaults)": (
        "multitask-prompt-tuning",
        {},
        "mpt",
        SP_METHODS["multitask-prompt-tuning"].train["lr"],
        (
            "1 task, rank 1 (both libraries' defaults; PEFT gets task_ids 0); softprompt's shared prompt from "
            "sampled vocabulary tokens (its default), PEFT's RANDOM init (N(0, 1), its default); both start "
            "the task factors at 1"
        ),
    ),
    "adaption prompt (defaults)": (
        "adaption-prompt",
        {},
        "adaption",
        SP_METHODS["adaption-prompt"].train["lr"],
        (
            "gated prompts of 8 vectors on all 30 layers (softprompt's default adapter_layers 30; PEFT "
            "adapter_len 8, adapter_layers 30), N(0, 1) prompts and zero gates in both"
        ),
    ),
}


def methods(preset) -> list[str]:
    """The METHODS labels this preset trains."""
    return list(preset.rt_methods or METHODS)


def chosen(ctx: Context) -> list[str]:
    """The labels this process trains: ``--methods`` (checked against the preset's in quality.py) or the
    preset's."""
    return [m for m in methods(ctx.preset) if not ctx.methods or m in ctx.methods]


def run(ctx: Context) -> None:
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset

    p = ctx.preset
    model = load_model(SMOLLM)
    data = load_dataset("rotten-tomatoes")
    test = data.test[: p.rt_eval]
    val = data.validation[: p.rt_val]
    part = ctx.recorder.start(
        PART,
        {
            "model": SMOLLM,
            "dataset": "rotten-tomatoes",
            "template": data.spec.default_templates[0],
            "virtual_tokens": VIRTUAL,
            "steps": p.rt_steps,
            "batch": p.rt_batch,
            "test_examples": len(test),
            "validation_examples": len(val),
            "eval_every": p.rt_eval_every,
            "methods": {
                k: {"softprompt": {"method": m, **f}, "peft": kind, "lr": lr, "init_note": note}
                for k, (m, f, kind, lr, note) in METHODS.items()
                if k in methods(p)
            },
        },
    )
    labels = [ex[data.spec.label_field] for ex in test]
    part["majority"] = max(labels.count(v) for v in set(labels)) / len(labels)
    if not part.get("templates"):
        part["templates"] = templates(model, data.spec, test)
    ctx.recorder.save()
    for seed in ctx.seeds:  # per seed every softprompt method first, then PEFT's (the defaults' rows early)
        for library in ctx.libraries:
            for label in chosen(ctx):
                one_method(ctx, model, data, test, val, label, seed, library)


def templates(model, spec, test: list[dict]) -> dict:
    """Every hand-written template of the spec, zero-shot, on ``test`` (the library's template_sensitivity)."""
    import time

    from softprompt.experiments.sensitivity import template_sensitivity

    t0 = time.perf_counter()
    sens = template_sensitivity(model, spec, test, list(spec.default_templates), progress=False)
    for r in sens["templates"]:
        print(f"  [{PART}] template {r['accuracy']:.3f} {r['template']!r}", flush=True)
    rows = [
        {"template": r["template"], "verbalizer": r["verbalizer"], "accuracy": r["accuracy"]}
        for r in sens["templates"]
    ]
    return {
        "metric": "accuracy",
        "examples": len(test),
        "rows": rows,
        "min": sens["min"],
        "median": sens["median"],
        "max": sens["max"],
        "eval_s": round(time.perf_counter() - t0, 2),
    }


def one_method(ctx: Context, model, data, test, val, label: str, seed: int, library: str) -> None:
    """Train and score ``label`` in ``library`` (softprompt or peft) for one seed, unless recorded."""
    from softprompt.tasks import make_task

    if ctx.recorder.done(PART, label, library, seed):
        return
    task = make_task(model, data.spec, template=data.spec.default_templates[0], virtual_tokens=VIRTUAL)
    if library == "softprompt":
        _softprompt_run(ctx, model, data, task, test, val, label, seed)
    else:
        _peft_run(ctx, data, task, test, label, seed)


def _softprompt_run(ctx: Context, model, data, task, test, val, label: str, seed: int) -> None:
    from softprompt.methods import make_config
    from softprompt.training import TrainJob

    p = ctx.preset
    method, fields, _, lr, _ = METHODS[label]
    name = slug(label)
    if name in model.bank:
        model.bank.remove(name)
    torch.manual_seed(seed)
    model.add_prompt(
        name,
        make_config(method, num_virtual_tokens=VIRTUAL, **fields),
        seed=seed,
        label_words=label_words(task),
    )
    job = TrainJob(prompt=name, task=task, train=data.train, validation=val)
    result, losses, curve = train_prompts(
        model,
        job,
        steps=p.rt_steps,
        batch=p.rt_batch,
        lr=lr,
        seed=seed,
        out=ctx.work / f"{PART}-{name}-{seed}",
        eval_every=p.rt_eval_every,
    )
    _, metrics, secs = timed_predict(model, task, test, name, 16)
    model.bank.remove(name)
    ctx.recorder.add_run(
        PART,
        run_record(
            label=label,
            library="softprompt",
            method=method,
            seed=seed,
            metric="accuracy",
            value=metrics["accuracy"],
            params=result.trainable_params,
            train_s=result.train_time_s,
            steps=result.steps,
            eval_s=secs,
            n_eval=len(test),
            lr=lr,
            losses=losses,
            curve=[{"step": c["step"], "value": c[name]} for c in curve],
        ),
    )


def _peft_run(ctx: Context, data, task, test, label: str, seed: int) -> None:
    p = ctx.preset
    _, _, kind, lr, _ = METHODS[label]
    init_text = "".join(" " + w for w in label_words(task))
    out = peft_side.train_and_score(
        kind,
        task,
        data.train,
        test,
        n=VIRTUAL,
        steps=p.rt_steps,
        batch=p.rt_batch,
        lr=lr,
        seed=seed,
        init_text=init_text,
    )
    ctx.recorder.add_run(
        PART,
        run_record(
            label=label,
            library="peft",
            method=kind,
            seed=seed,
            metric="accuracy",
            value=out["metrics"]["accuracy"],
            params=out["params"],
            train_s=out["train_s"],
            steps=p.rt_steps,
            eval_s=out["eval_s"],
            n_eval=len(test),
            lr=lr,
            losses=out["losses"],
        ),
    )
