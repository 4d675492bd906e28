"""What bench/quantize.py runs in a fresh process per backbone (spawned, so each peak RSS is its own): the peak
memory of predicting and training, what one step saves for backward, and the accuracy run; and the backbones."""

from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import time
from pathlib import Path

import torch

import common

BACKBONES: dict[str, tuple[str, str | None]] = {
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "int8": ("float32", "int8"),
    "int8 + bf16": ("bfloat16", "int8"),
    "nf4": ("float32", "nf4"),
}
"""Label -> (dtype of the unquantized parts, quantize scheme)."""


def load_backbone(label: str):
    from softprompt.core.loading import load_model

    dtype, scheme = BACKBONES[label]
    return load_model(common.MODEL, dtype=dtype, device="cpu", quantize=scheme)


def demo_task(model, data):
    """The demo's prompt-tuning setup: (task, method fields, learning rate, initial token ids)."""
    from softprompt.experiments.demo import method_setup
    from softprompt.tasks import make_task

    fields, template, lr = method_setup("prompt-tuning", data.spec.default_templates[0], model.tokenizer)
    task = make_task(model, data.spec, template=template, virtual_tokens=fields["num_virtual_tokens"])
    return task, fields, lr, task.template.init_token_ids(model.tokenizer)


def trim() -> None:
    """Return freed heap pages to the OS, so a peak mark starts from memory in use: quantizing at load time
    frees the float32 weights it read, and glibc keeps such pages in the RSS until trimmed."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_child(label: str, args, queue) -> None:
    """Peak RSS of the accuracy run's own step (the task's loss: label words scored at the answer position)."""
    from softprompt.data import load_dataset
    from softprompt.methods import make_config

    torch.set_num_threads(args.threads)
    data = load_dataset("rotten-tomatoes", seed=0)
    trim()
    before = common.rss_mib()["rss"]
    model = load_backbone(label)
    trim()
    loaded = common.rss_mib()["rss"]
    task, fields, lr, init = demo_task(model, data)
    model.add_prompt("pt", make_config("prompt-tuning", **fields), seed=0, init_token_ids=init)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    b = args.batch_size
    batches = [task.collate(data.train[i * b : (i + 1) * b]) for i in range(args.mem_steps + 1)]
    with model.inference(), torch.no_grad():  # inference first: training leaves freed pages in the RSS
        task.predict(model, batches[0], ["pt"] * b)  # warm-up
        trim()
        common.reset_peak_rss()
        task.predict(model, batches[1], ["pt"] * b)
    infer_peak = common.rss_mib()["hwm"]
    model.train()

    def step(batch):
        task.loss(model, batch, ["pt"] * b).backward()
        opt.step()
        opt.zero_grad()

    step(batches[0])
    trim()
    common.reset_peak_rss()
    t0 = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    step_s = (time.perf_counter() - t0) / args.mem_steps
    train_peak = common.rss_mib()["hwm"]
    model.gradient_checkpointing_enable()  # the same steps with activation checkpointing
    step(batches[0])
    trim()
    common.reset_peak_rss()
    for batch in batches[1:]:
        step(batch)
    ckpt_peak = common.rss_mib()["hwm"]
    queue.put(
        {
            "rss_before_load_mib": round(before, 1),
            "rss_after_load_mib": round(loaded, 1),
            "train_peak_rss_mib": round(train_peak, 1),
            "infer_peak_rss_mib": round(infer_peak, 1),
            "train_peak_above_start_mib": round(train_peak - before, 1),
            "train_ckpt_peak_above_start_mib": round(ckpt_peak - before, 1),
            "infer_peak_above_start_mib": round(infer_peak - before, 1),
            "train_step_s": round(step_s, 2),
        }
    )


def saved_child(label: str, args, queue) -> None:
    """What one training step's forward keeps for backward (the accuracy run's batch and loss): MiB of tensors
    saved by autograd that are not the model's own parameters or buffers (activations), by dtype, and MiB of
    parameters saved (weights kept for the input gradient: no extra memory, they are alive anyway)."""
    from softprompt.data import load_dataset
    from softprompt.methods import make_config

    torch.set_num_threads(args.threads)
    data = load_dataset("rotten-tomatoes", seed=0)
    model = load_backbone(label)
    task, fields, _lr, init = demo_task(model, data)
    model.add_prompt("pt", make_config("prompt-tuning", **fields), seed=0, init_token_ids=init)
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: set[int] = set()
    mib: dict[str, float] = {}
    width: dict[int, float] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            key = "parameters" if storage.data_ptr() in owned else str(t.dtype).replace("torch.", "")
            mib[key] = mib.get(key, 0.0) + storage.nbytes() / 2**20
            if key != "parameters" and t.dim():  # activations by their last dimension (1536: the MLPs, ...)
                width[t.shape[-1]] = width.get(t.shape[-1], 0.0) + storage.nbytes() / 2**20
        return t

    model.train()
    b = args.batch_size
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.loss(model, task.collate(data.train[:b]), ["pt"] * b)
    activations = sum(v for k, v in mib.items() if k != "parameters")
    by_width = {str(k): round(v, 1) for k, v in sorted(width.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    queue.put(
        {
            "activations_mib": round(activations, 1),
            **{k: round(v, 1) for k, v in mib.items()},
            "activations_by_last_dim_mib": by_width,
        }
    )


def accuracy_child(label: str, args, queue) -> None:
    """Train the demo's prompt-tuning run on ``label``'s backbone; score it there (and prompts of other runs)."""
    from softprompt.data import load_dataset
    from softprompt.files.prompts import load_prompt
    from softprompt.methods import make_config
    from softprompt.training import TrainConfig, TrainJob, evaluate, train

    torch.set_num_threads(args.threads)
    model = load_backbone(label)
    data = load_dataset("rotten-tomatoes", seed=0)
    test = data.test[: args.test]
    out = {}
    task, fields, lr, init = demo_task(model, data)
    for other in args.score_prompts:  # prompts trained on other backbones, scored on this one
        name, _ = load_prompt(model, Path(other), f"from_{len(out)}")
        out[other] = evaluate(model, task, test, name)["accuracy"]
    if not args.train:
        queue.put(out)
        return
    model.add_prompt("pt", make_config("prompt-tuning", **fields), seed=0, init_token_ids=init)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        eval_every=args.steps,
        eval_examples=32,
        save_every=args.steps,
        seed=0,
        log_every=8,
    )
    job = TrainJob(prompt="pt", task=task, train=data.train, validation=data.validation, info={})
    run_dir = Path(args.work) / label.replace(" ", "")
    t0 = time.perf_counter()
    result = train(model, job, config, run_dir, progress=False)
    out["train_s"] = round(time.perf_counter() - t0, 1)
    out["final_loss"] = result.final_loss
    out["accuracy"] = evaluate(model, task, test, "pt")["accuracy"]
    out["prompt"] = str(run_dir / "final" / "pt")
    queue.put(out)


def start(target, label: str, args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(label, args, q))
    p.start()
    return p, q


def finish(started, label: str) -> dict:
    p, q = started
    result = q.get()  # before join: a large result would block the child's exit
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"child for {label} failed (exit code {p.exitcode})")
    return result


def run_child(target, label: str, args) -> dict:
    return finish(start(target, label, args), label)
