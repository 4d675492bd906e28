"""Quantized frozen backbones on SmolLM2-135M (real weights): peak memory and accuracy against full precision.

Memory: each backbone (float32, bfloat16, int8, int8 with bfloat16 embeddings, nf4) in its own fresh process:
the peak RSS of predicting one batch (after one warm-up batch), then one warm-up step of the accuracy run
below (batch 8 of real reviews, the task's loss), then the peak RSS of ``--mem-steps`` more steps; then the
same with gradient checkpointing. Reported as peak RSS and as peak above the process's
RSS before the model loaded (what the backbone, activations and optimizer cost); freed heap pages are
returned to the OS (``malloc_trim``) before each mark, so what the loader freed is not counted.

Saved for backward: what one step's forward (the same batch and loss) keeps for backward, per backbone: the
activations by dtype (tensors autograd saves that are not the model's parameters) and the parameters it keeps.

Accuracy: the demo's prompt-tuning run (its template, text initialization, learning rate; ``--steps`` x
``--batch-size``, seed 0) trained on each backbone, each in its own process (side by side), then scored on the first
``--test`` test reviews on the backbone it trained on and, for quantized runs, on the float32 backbone.

    python bench/quantize.py                       # both; writes bench/results/quantize.{json,md}
    python bench/quantize.py --only memory           # or: --only saved, --only accuracy
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import multiprocessing as mp
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

import common
from quantize_report import markdown

RESULTS = Path(__file__).parent / "results"
BACKBONES: dict[str, tuple[str, str | None]] = {
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "int8": ("float32", "int8"),
    "int8 + bf16": ("bfloat16", "int8"),
    "nf4": ("float32", "nf4"),
}
"""Label -> (dtype of the unquantized parts, quantize scheme)."""
ACCURACY = ["float32", "int8", "nf4"]


def _load(label: str):
    from softprompt.core.loading import load_model

    dtype, scheme = BACKBONES[label]
    return load_model(common.MODEL, dtype=dtype, device="cpu", quantize=scheme)


def _demo_task(model, data):
    """The demo's prompt-tuning setup: (task, method fields, learning rate, initial token ids)."""
    from softprompt.experiments.demo import method_setup
    from softprompt.tasks import make_task

    fields, template, lr = method_setup("prompt-tuning", data.spec.default_templates[0], model.tokenizer)
    task = make_task(model, data.spec, template=template, virtual_tokens=fields["num_virtual_tokens"])
    return task, fields, lr, task.template.init_token_ids(model.tokenizer)


def _trim() -> None:
    """Return freed heap pages to the OS, so a peak mark starts from memory in use: quantizing at load time
    frees the float32 weights it read, and glibc keeps such pages in the RSS until trimmed."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _memory_child(label: str, args, queue) -> None:
    """Peak RSS of the accuracy run's own step (the task's loss: label words scored at the answer position)."""
    from softprompt.data import load_dataset
    from softprompt.methods import make_config

    torch.set_num_threads(args.threads)
    data = load_dataset("rotten-tomatoes", seed=0)
    _trim()
    before = common.rss_mib()["rss"]
    model = _load(label)
    _trim()
    loaded = common.rss_mib()["rss"]
    task, fields, lr, init = _demo_task(model, data)
    model.add_prompt("pt", make_config("prompt-tuning", **fields), seed=0, init_token_ids=init)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    b = args.batch_size
    batches = [task.collate(data.train[i * b : (i + 1) * b]) for i in range(args.mem_steps + 1)]
    with model.inference(), torch.no_grad():  # inference first: training leaves freed pages in the RSS
        task.predict(model, batches[0], ["pt"] * b)  # warm-up
        _trim()
        common.reset_peak_rss()
        task.predict(model, batches[1], ["pt"] * b)
    infer_peak = common.rss_mib()["hwm"]
    model.train()

    def step(batch):
        task.loss(model, batch, ["pt"] * b).backward()
        opt.step()
        opt.zero_grad()

    step(batches[0])
    _trim()
    common.reset_peak_rss()
    t0 = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    step_s = (time.perf_counter() - t0) / args.mem_steps
    train_peak = common.rss_mib()["hwm"]
    model.gradient_checkpointing_enable()  # the same steps with activation checkpointing
    step(batches[0])
    _trim()
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


def _saved_child(label: str, args, queue) -> None:
    """What one training step's forward keeps for backward (the accuracy run's batch and loss): MiB of tensors
    saved by autograd that are not the model's own parameters or buffers (activations), by dtype, and MiB of
    parameters saved (weights kept for the input gradient: no extra memory, they are alive anyway)."""
    from softprompt.data import load_dataset
    from softprompt.methods import make_config

    torch.set_num_threads(args.threads)
    data = load_dataset("rotten-tomatoes", seed=0)
    model = _load(label)
    task, fields, _lr, init = _demo_task(model, data)
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


def _accuracy_child(label: str, args, queue) -> None:
    """Train the demo's prompt-tuning run on ``label``'s backbone; score it there (and prompts of other runs)."""
    from softprompt.data import load_dataset
    from softprompt.files.prompts import load_prompt
    from softprompt.methods import make_config
    from softprompt.training import TrainConfig, TrainJob, evaluate, train

    torch.set_num_threads(args.threads)
    model = _load(label)
    data = load_dataset("rotten-tomatoes", seed=0)
    test = data.test[: args.test]
    out = {}
    task, fields, lr, init = _demo_task(model, data)
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


def _start(target, label: str, args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(label, args, q))
    p.start()
    return p, q


def _finish(started, label: str) -> dict:
    p, q = started
    result = q.get()  # before join: a large result would block the child's exit
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"child for {label} failed (exit code {p.exitcode})")
    return result


def _child(target, label: str, args) -> dict:
    return _finish(_start(target, label, args), label)


def per_backbone(child, what: str, args) -> dict:
    """``child`` run for each of ``args.backbones`` in its own process, each result printed as ``what label: ...``."""
    out = {}
    for label in args.backbones:
        out[label] = _child(child, label, args)
        print(f"{what} {label}: {out[label]}", flush=True)
    return out


def measure_accuracy(args) -> dict:
    """The runs side by side (one thread each: they are independent), then the quantized runs' prompts scored
    on the float32 backbone."""
    train = argparse.Namespace(**vars(args), score_prompts=[], train=True)
    started = {label: _start(_accuracy_child, label, train) for label in args.accuracy_backbones}
    out = {}
    for label, child in started.items():
        out[label] = _finish(child, label)
        print(f"accuracy {label}: {out[label]}", flush=True)
    quantized = [label for label in out if BACKBONES[label][1] is not None]
    prompts = [out[label]["prompt"] for label in quantized]
    cross = _child(
        _accuracy_child, "float32", argparse.Namespace(**vars(args), score_prompts=prompts, train=False)
    )
    for label in quantized:
        out[label]["accuracy_on_float32"] = cross[out[label]["prompt"]]
    print(f"cross: {cross}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("memory", "accuracy", "saved"))
    p.add_argument("--mem-steps", type=int, default=2)
    p.add_argument(
        "--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES), help="(memory)"
    )
    p.add_argument("--accuracy-backbones", nargs="+", choices=list(BACKBONES), default=ACCURACY)
    p.add_argument("--score", nargs="+", metavar="PROMPT", help="only score these prompts on float32")
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--work", default="/tmp/softprompt-bench-quantize", help="run folders of the accuracy runs"
    )
    p.add_argument("--out", default=str(RESULTS / "quantize"))
    args = p.parse_args()
    res = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": common.machine(),
        "torch": torch.__version__,
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out")},
    }
    if args.only in (None, "memory"):
        res["memory"] = per_backbone(_memory_child, "memory", args)
    if args.only in (None, "saved"):
        res["saved_for_backward"] = per_backbone(_saved_child, "saved for backward", args)
    if args.only == "saved":
        pass
    elif args.score:  # only score given prompt folders on the float32 backbone
        ns = argparse.Namespace(**vars(args), score_prompts=args.score, train=False)
        res["scored_on_float32"] = _child(_accuracy_child, "float32", ns)
    elif args.only in (None, "accuracy"):
        res["accuracy"] = measure_accuracy(args)
    Path(args.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
