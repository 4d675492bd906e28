"""Prompt ensembles (issue 23): N prompt-tuning prompts from N seeds, the ensemble vs its best and mean member on
one test split, and the time of one N-prompt batch vs N separate runs (medians of ``--repeats``).

    nice -n 19 python bench/ensemble.py --phase accuracy          # train 5 seeds, score (SmolLM2, Rotten Tomatoes)
    # as measured (bench/results/ensemble.md): --steps 16 --val-examples 32 --limit 128, members trained with
    # --phase train --train-seeds N in one process each, scored with --phase score --shard i --shards 2,
    # merged with --phase accuracy --shards 2 --load-log FILE
    flock /tmp/softprompt-timing.lock python bench/ensemble.py --phase timing    # at normal priority
    python bench/ensemble.py --model runs/tiny --seeds 2 --steps 2 --limit 16 --out /tmp/e --results /tmp/e  # smoke

Members: the demo's prompt-tuning setup (``bench/prompt_runs.py``: the dataset's first template, init from the
demo's lead-in text at lr 3e-3, batch 8, ``--steps`` steps, the best of two validation checks on 64 validation
reviews) with seeds 0..N-1: the seed sets the data order (the start is the same words for every seed).
Scoring uses ``predict_ensemble`` (exact: each member's probabilities are its own ``predict``'s); the vote is
that call's rule (most members, ties to the higher mean probability). Writes ``<results>.json`` / ``.md``
(the timing phase adds its figures to the same files).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import softprompt
from prompt_runs import demo_fields, load_avg, load_log_summary, load_log_text, machine_note, train_prompt
from softprompt.commands.evaluate import split_examples
from softprompt.training.ensemble import predict_ensemble


def train_members(args, model) -> list[Path]:
    data = softprompt.load_dataset(args.dataset)
    fields, template, lr = demo_fields(model, data)
    runs = []
    for seed in args.train_seeds or range(args.seeds):
        run = Path(args.out) / f"seed{seed}"
        if not (run / "best" / "p").is_dir():
            print(f"seed {seed}: training {args.steps} steps", flush=True)
            doc = train_prompt(model, data, run, fields=fields, template=template, lr=lr, steps=args.steps,
                               seed=seed, validation=data.validation[: args.val_examples],
                               eval_every=max(1, args.steps // 2))  # fmt: skip
            print(f"seed {seed}: validation {doc['curve']} in {doc['train_time_s']:.0f} s", flush=True)
        runs.append(run)
    return runs


def load_members(args, model) -> list[tuple[str, object]]:
    members = []
    for i in range(args.seeds):
        t = softprompt.load_trained(Path(args.out) / f"seed{i}", model, name=f"seed{i}")
        members.append((t.name, t.task))
    return members


def score(args, model, examples, shard: int = 0, shards: int = 1) -> dict:
    """Every member's and the ensemble's outputs on examples shard, shard+shards, ... (one predict_ensemble)."""
    load_start = load_avg()
    members = load_members(args, model)
    index = list(range(shard, len(examples), shards))
    part = [examples[i] for i in index]
    r = predict_ensemble(model, members, part, batch_size=args.batch_size)
    return {
        "index": index, "labels": r.labels, "gold": members[0][1].gold(part), "members": r.members,
        "predictions": r.predictions, "votes": r.votes, "probabilities": r.probabilities,
        "load_avg": [load_start, load_avg()],
    }  # fmt: skip


def shard_file(args, shard: int, shards: int) -> Path:
    return Path(args.out) / f"scores-{shard}-of-{shards}.json"


def accuracy_phase(args, model, examples) -> dict:
    """The figures from every shard's scores (``--phase score`` wrote them), or from one scoring pass here."""
    if args.shards > 1:
        parts = [json.loads(shard_file(args, i, args.shards).read_text()) for i in range(args.shards)]
    else:
        train_members(args, model)
        parts = [score(args, model, examples)]
    labels = parts[0]["labels"]
    gold = [g for p in parts for g in p["gold"]]
    names = list(parts[0]["members"])
    members = {n: [x for p in parts for x in p["members"][n]] for n in names}
    mean = [x for p in parts for x in p["probabilities"]]
    votes = [x for p in parts for x in p["votes"]]

    def acc(picks: list[str]) -> float:
        return sum(labels.index(p) == g for p, g in zip(picks, gold)) / len(gold)

    top = {n: [max(p, key=p.get) for p in members[n]] for n in names}
    each = {n: acc(top[n]) for n in names}
    vote = [max(labels, key=lambda lab, v=v, p=p: v[lab] + 0.5 * p[lab]) for v, p in zip(votes, mean)]
    agree = sum(len({top[n][i] for n in names}) == 1 for i in range(len(gold))) / len(gold)
    return {
        "scored": len(gold), "members": each, "best_member": max(each.values()),
        "mean_member": statistics.mean(each.values()),
        "ensemble_mean": acc([x for p in parts for x in p["predictions"]]), "ensemble_vote": acc(vote),
        "members_agree_share": agree, "shards": args.shards, "scoring_load_avg": [p["load_avg"] for p in parts],
        "load_log": load_log_summary(args.load_log),
    }  # fmt: skip


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def timing_phase(args, model, examples) -> dict:
    members = load_members(args, model)
    examples = examples[: args.timing_examples]
    predict_ensemble(model, members, examples[: args.batch_size], batch_size=args.batch_size)  # warm-up
    one = timed(lambda: predict_ensemble(model, members, examples, batch_size=args.batch_size), args.repeats)
    sep = timed(
        lambda: [predict_ensemble(model, [m], examples, batch_size=args.batch_size) for m in members],
        args.repeats,
    )
    return {
        "timing_examples": len(examples), "timing_repeats": args.repeats, "time_one_batch_s": one,
        "time_separate_s": sep, "median_one_batch_s": statistics.median(one),
        "median_separate_s": statistics.median(sep),
        "separate_over_one_batch": statistics.median(sep) / statistics.median(one),
    }  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--phase", choices=("train", "score", "accuracy", "timing", "both"), default="both")
    p.add_argument("--shard", type=int, default=0, help="--phase score: this shard (examples shard::shards)")
    p.add_argument("--shards", type=int, default=1, help="score in this many processes; accuracy merges them")
    p.add_argument(
        "--load-log", help="--phase accuracy: a 'HH:MM:SS load1 load5 load15' log sampled beside it"
    )
    p.add_argument(
        "--train-seeds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="--phase train: only these seeds (e.g. 3,4; to train in two processes)",
    )
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="rotten-tomatoes")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=48, help="training steps per member (the demo's 48)")
    p.add_argument("--val-examples", type=int, default=64, help="validation reviews checked during training")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="score only the first N examples")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timing-examples", type=int, default=128)
    p.add_argument("--out", default="runs/bench-ensemble", help="member run folders")
    p.add_argument("--results", default="bench/results/ensemble", help="<results>.json and .md")
    args = p.parse_args()
    if args.phase == "train":
        train_members(args, softprompt.load_model(args.model))
        return 0
    if args.phase == "score":
        examples = split_examples(softprompt.load_dataset(args.dataset), args.split)[: args.limit]
        doc = score(args, softprompt.load_model(args.model), examples, args.shard, args.shards)
        shard_file(args, args.shard, args.shards).write_text(json.dumps(doc) + "\n")
        return 0
    results = Path(args.results)
    new: dict = {}
    model = None if args.phase == "accuracy" and args.shards > 1 else softprompt.load_model(args.model)
    examples = split_examples(softprompt.load_dataset(args.dataset), args.split)[: args.limit]
    for phase in ("accuracy", "timing"):
        if args.phase in (phase, "both"):
            t0, start = time.time(), load_avg()
            figures = (accuracy_phase if phase == "accuracy" else timing_phase)(args, model, examples)
            new[phase] = figures | {"load_avg_start": start, "load_avg_end": load_avg(),
                                    "time_s": round(time.time() - t0), "machine": machine_note()}  # fmt: skip
    # read just before writing: the timing and accuracy phases may run in separate processes at once
    doc = (
        json.loads(results.with_suffix(".json").read_text()) if results.with_suffix(".json").is_file() else {}
    )
    doc |= new | {
        "model": args.model, "dataset": args.dataset, "split": args.split, "examples": len(examples),
        "seeds": args.seeds, "steps": args.steps, "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }  # fmt: skip
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    results.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


def markdown(doc: dict) -> str:
    lines = [
        f"# Prompt ensembles: {doc['model']} on {doc['dataset']} ({doc['device']})",
        "",
    ]
    if "accuracy" in doc:
        a = doc["accuracy"]
        lines += [
            f"{doc['seeds']} prompt-tuning prompts (seeds 0-{doc['seeds'] - 1}, {doc['steps']} steps each, the "
            f"demo's setup), scored on the {doc['examples']} examples of the {doc['split']} split. Load averages "
            f"{a['scoring_load_avg']} at the start and end of each scoring process ({a['machine']}; shared "
            "machine)." + load_log_text(a.get("load_log")),
            "",
            "| members | best member | mean member | ensemble (mean of probabilities) | ensemble (majority vote) |",
            "|---|---|---|---|---|",
            f"| {doc['seeds']} | {a['best_member']:.4f} | {a['mean_member']:.4f} | {a['ensemble_mean']:.4f} "
            f"| {a['ensemble_vote']:.4f} |",
            "",
            "Members: " + ", ".join(f"{k} {v:.4f}" for k, v in a["members"].items())
            + f"; all members agree on {a['members_agree_share']:.1%} of the examples.",
        ]  # fmt: skip
    if "timing" in doc:
        t = doc["timing"]
        lines += [
            "",
            f"Time to score {t['timing_examples']} examples under all {doc['seeds']} prompts (median of "
            f"{t['timing_repeats']}; batch {doc['batch_size']} inputs): one mixed batch "
            f"{t['median_one_batch_s']:.2f} s vs {doc['seeds']} separate runs {t['median_separate_s']:.2f} s "
            f"(x{t['separate_over_one_batch']:.2f}). Load average {t['load_avg_start']} -> {t['load_avg_end']} "
            f"({t['machine']}; "
            "shared machine; normal priority, under flock /tmp/softprompt-timing.lock).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
