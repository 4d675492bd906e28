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
import json
from datetime import UTC, datetime
from pathlib import Path

import torch

import common
from quantize_children import BACKBONES, accuracy_child, finish, memory_child, run_child, saved_child, start
from quantize_report import markdown
from softprompt.io.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
ACCURACY = ["float32", "int8", "nf4"]


def per_backbone(child, what: str, args) -> dict:
    """``child`` run for each of ``args.backbones`` in its own process, each result printed as ``what label: ...``."""
    out = {}
    for label in args.backbones:
        out[label] = run_child(child, label, args)
        print(f"{what} {label}: {out[label]}", flush=True)
    return out


def measure_accuracy(args) -> dict:
    """The runs side by side (one thread each: they are independent), then the quantized runs' prompts scored
    on the float32 backbone."""
    train = argparse.Namespace(**vars(args), score_prompts=[], train=True)
    started = {label: start(accuracy_child, label, train) for label in args.accuracy_backbones}
    out = {}
    for label, child in started.items():
        out[label] = finish(child, label)
        print(f"accuracy {label}: {out[label]}", flush=True)
    quantized = [label for label in out if BACKBONES[label][1] is not None]
    prompts = [out[label]["prompt"] for label in quantized]
    cross = run_child(
        accuracy_child, "float32", argparse.Namespace(**vars(args), score_prompts=prompts, train=False)
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
        res["memory"] = per_backbone(memory_child, "memory", args)
    if args.only in (None, "saved"):
        res["saved_for_backward"] = per_backbone(saved_child, "saved for backward", args)
    if args.only == "saved":
        pass
    elif args.score:  # only score given prompt folders on the float32 backbone
        ns = argparse.Namespace(**vars(args), score_prompts=args.score, train=False)
        res["scored_on_float32"] = run_child(accuracy_child, "float32", ns)
    elif args.only in (None, "accuracy"):
        res["accuracy"] = measure_accuracy(args)
    atomic_write_text(args.out + ".json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out + ".md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
