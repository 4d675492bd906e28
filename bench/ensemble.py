"""Prompt ensembles (issue 23): N prompt-tuning prompts from N seeds, the ensemble vs its best and mean member on
a test split, and the time of one N-prompt batch vs N separate runs (medians of ``--repeats``).

    python bench/ensemble.py --out bench/results/ensemble                         # SmolLM2 on Rotten Tomatoes
    python bench/ensemble.py --model runs/tiny --dataset reviews.jsonl --seeds 2 --steps 2 --limit 16  # smoke

Trains the missing seeds with ``softprompt train`` (the method's defaults, ``--steps``), then scores every member
and the ensemble with ``predict_ensemble`` (exact: each member's probabilities are its own ``predict``'s).
Writes ``<out>/ensemble.json``; prints a markdown table. Figures depend on the machine: say which one ran it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import softprompt
from softprompt.cli import main as cli
from softprompt.commands.evaluate import split_examples
from softprompt.training.ensemble import predict_ensemble


def train_members(args) -> list[Path]:
    runs = []
    for seed in range(args.seeds):
        run = Path(args.out) / f"seed{seed}"
        if not (run / "run.json").is_file():
            argv = ["train", "--model", args.model, "--method", "prompt-tuning", "--dataset", args.dataset]
            argv += ["--out", str(run), "--seed", str(seed), "--steps", str(args.steps), "--quiet"]
            assert cli(argv) == 0, f"training seed {seed} failed"
        runs.append(run)
    return runs


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="rotten-tomatoes")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="score only the first N examples")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench/results/ensemble")
    args = p.parse_args()
    runs = train_members(args)
    model = softprompt.load_model(args.model)
    members = []
    for i, run in enumerate(runs):
        t = softprompt.load_trained(run, model, name=f"seed{i}")
        members.append((t.name, t.task))
    data = softprompt.load_dataset(args.dataset)
    examples = split_examples(data, args.split)[: args.limit]
    task = members[0][1]
    gold = task.gold(examples)
    result = predict_ensemble(model, members, examples, batch_size=args.batch_size)

    def accuracy(probs: list[dict]) -> float:
        return sum(result.labels.index(max(p, key=p.get)) == g for p, g in zip(probs, gold)) / len(gold)

    each = {n: accuracy(result.members[n]) for n, _ in members}
    vote = predict_ensemble(model, members, examples, combine="vote", batch_size=args.batch_size)
    one_batch = timed(
        lambda: predict_ensemble(model, members, examples, batch_size=args.batch_size), args.repeats
    )
    separate = timed(
        lambda: [predict_ensemble(model, [m], examples, batch_size=args.batch_size) for m in members],
        args.repeats,
    )
    doc = {
        "model": args.model, "dataset": args.dataset, "split": args.split, "examples": len(examples),
        "steps": args.steps, "members": each, "best_member": max(each.values()),
        "mean_member": statistics.mean(each.values()), "ensemble_mean": accuracy(result.probabilities),
        "ensemble_vote": sum(vote.labels.index(p) == g for p, g in zip(vote.predictions, gold)) / len(gold),
        "time_one_batch_s": one_batch, "time_separate_s": separate,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }  # fmt: skip
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ensemble.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(
        "| members | best member | mean member | ensemble (mean) | ensemble (vote) | one batch / separate (s) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(members)} | {doc['best_member']:.3f} | {doc['mean_member']:.3f} | {doc['ensemble_mean']:.3f} "
        f"| {doc['ensemble_vote']:.3f} | {one_batch:.2f} / {separate:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
