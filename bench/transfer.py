"""Prompt transfer (issue 23, SPoT-style): a prompt-tuning prompt trained on a source task initializes the
target task's prompt; target accuracy vs steps against other starts, same seeds.

    nice -n 19 python bench/transfer.py --seeds 2 --sources runs/bench-transfer/source-facts --source-val 8
        # as measured (bench/results/transfer.md): facts -> Rotten Tomatoes, SmolLM2-135M; --seed-list N runs
        # one seed per process, --summarize-only --load-log FILE writes the results from the finished runs
    python bench/transfer.py --model runs/tiny --steps 4 --eval-every 2 --seeds 1 --limit 8 --out /tmp/t  # smoke

Arms on the target (each with every seed; same data order per seed):
  vocab        init="vocab" (embeddings of frequent tokens), the method's default lr (1e-1)
  labels       init="labels" (the target's label words, then vocab), lr 1e-1
  text         init="text" from the demo's lead-in (what the source prompt started from, untrained), lr 3e-3
  transfer     init="file" from the source prompt of the same seed, lr 3e-3 (the rate for a start from words)
  transfer-hi  init="file", lr 1e-1 (so a gap is not only the learning rate)
Source prompts: prompt tuning on the source task (``--sources DIR`` with seed<N>/best/p reuses them). A facts
target is possible but slow on CPU: scoring a fact costs a continuation row per multi-token candidate object. Every arm is scored on the same held-out examples
(the target's test split, first ``--limit``) before training and every ``--eval-every`` steps.
Writes ``<results>.json`` and ``<results>.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import softprompt
from prompt_runs import demo_fields, load_avg, train_prompt

ARMS = {
    "vocab": ({"init": "vocab"}, 1e-1),
    "labels": ({"init": "labels"}, 1e-1),
    "text": ({}, 3e-3),  # the demo's fields: init="text" from its lead-in
    "transfer": ({"init": "file"}, 3e-3),
    "transfer-hi": ({"init": "file"}, 1e-1),
}


def source_prompt(args, model, seed: int) -> Path:
    """The source prompt of ``seed`` (trained here unless ``--sources`` holds it): the demo's prompt length and
    template on the source task, started as ``--source-init`` says (``text``: the demo's lead-in at 3e-3;
    ``vocab``: the method's default start and rate, 1e-1), scored once at the end on ``--source-val``
    validation examples (the best = the final prompt)."""
    run = Path(args.sources) / f"seed{seed}"
    if not (run / "best" / "p").is_dir():
        data = softprompt.load_dataset(args.source)
        fields, template, lr = demo_fields(model, data)
        if args.source_init == "vocab":
            fields, lr = {"num_virtual_tokens": fields["num_virtual_tokens"], "init": "vocab"}, 1e-1
        print(f"source {args.source} seed {seed}: training {args.source_steps} steps", flush=True)
        doc = train_prompt(model, data, run, fields=fields, template=template, lr=lr, steps=args.source_steps,
                           seed=seed, validation=data.validation[: args.source_val],
                           eval_every=args.source_steps, score_start=False)  # fmt: skip
        print(f"source {args.source} seed {seed}: {doc['curve']}", flush=True)
    return run / "best" / "p"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--source", default="facts")
    p.add_argument("--target", default="rotten-tomatoes")
    p.add_argument("--sources", default=None, help="folder of seed<N> source runs (default: <out>/source)")
    p.add_argument("--source-steps", type=int, default=16)
    p.add_argument("--source-init", choices=("text", "vocab"), default="vocab")
    p.add_argument("--source-val", type=int, default=64, help="validation examples scoring the source prompt")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=8)
    p.add_argument("--limit", type=int, default=128, help="held-out target examples scored")
    p.add_argument("--arms", default="vocab,text,transfer-hi")
    p.add_argument(
        "--seed-list",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="train only these seeds (several processes), then summarize every finished run",
    )
    p.add_argument("--summarize-only", action="store_true", help="write the results from finished runs")
    p.add_argument("--load-log", help="a 'HH:MM:SS load1 load5 load15' log sampled beside the runs")
    p.add_argument("--out", default="runs/bench-transfer", help="run folders")
    p.add_argument("--results", default="bench/results/transfer", help="<results>.json and .md")
    args = p.parse_args()
    args.sources = args.sources or str(Path(args.out) / f"source-{args.source}")
    t0, load_start = time.time(), load_avg()
    data = softprompt.load_dataset(args.target)
    held_out = data.test[: args.limit]
    folder = Path(args.out) / f"{args.source}-to-{args.target}"
    if not args.summarize_only:
        model = softprompt.load_model(args.model)
        fields, template, _ = demo_fields(model, data)
        for seed in args.seed_list or range(args.seeds):
            arms = args.arms.split(",")
            src = (
                source_prompt(args, model, seed)
                if any(ARMS[a][0].get("init") == "file" for a in arms)
                else None
            )
            for arm in arms:
                extra, lr = ARMS[arm]
                f = {**fields, **extra} | ({"init_file": str(src)} if extra.get("init") == "file" else {})
                f = {k: v for k, v in f.items() if not (k == "init_text" and f.get("init") != "text")}
                doc = train_prompt(model, data, folder / f"{arm}-seed{seed}", fields=f, template=template,
                                   lr=lr, steps=args.steps, seed=seed, validation=held_out,
                                   eval_every=args.eval_every)  # fmt: skip
                print(f"{arm} seed {seed}: {doc['curve']}", flush=True)
    runs = finished(folder, args)
    if runs:
        write(args, runs, held_out, t0, load_start)
    return 0


def finished(folder: Path, args) -> dict[str, list[dict]]:
    """Per arm, the finished runs of seeds 0..seeds-1 (their curve.json), in seed order."""
    runs: dict[str, list[dict]] = {}
    for arm in args.arms.split(","):
        for seed in range(args.seeds):
            f = folder / f"{arm}-seed{seed}" / "curve.json"
            if f.is_file():
                runs.setdefault(arm, []).append(
                    json.loads(f.read_text()) | {"seed": seed, "lr": ARMS[arm][1]}
                )
    return runs


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm: the mean (and min / max over seeds) metric at every evaluated step."""
    out = {}
    for arm, docs in runs.items():
        steps = [s for s, _ in docs[0]["curve"]]
        at = {s: [dict(d["curve"]).get(s) for d in docs] for s in steps}
        out[arm] = {
            "lr": docs[0]["lr"],
            "mean": {s: statistics.mean(v) for s, v in at.items() if None not in v},
            "min": {s: min(v) for s, v in at.items() if None not in v},
            "max": {s: max(v) for s, v in at.items() if None not in v},
        }
    return out


def verdicts(summary: dict[str, dict], steps: list) -> list[str]:
    """Per transfer arm and step: its mean minus each other start's mean (points), computed, not judged."""
    out = []
    for arm in [a for a in summary if a.startswith("transfer")]:
        for other in [a for a in summary if not a.startswith("transfer")]:
            diffs = [
                f"step {k}: {100 * (summary[arm]['mean'][k] - summary[other]['mean'][k]):+.1f}"
                for k in steps
                if k in summary[other]["mean"]
            ]
            out.append(f"- {arm} minus {other} (points): " + ", ".join(diffs))
    return out


def write(args, runs, held_out, t0: float, load_start) -> None:
    from prompt_runs import load_log_summary, load_log_text, machine_note

    summary = summarize(runs)
    sources = [Path(args.sources) / f"seed{s}" / "curve.json" for s in range(args.seeds)]
    src_docs = [json.loads(f.read_text()) for f in sources if f.is_file()]
    source_metric = src_docs[0]["metric"] if src_docs else "score"
    source_scores = [round(d["final"], 3) for d in src_docs]
    metric = next(iter(runs.values()))[0]["metric"]
    doc = {
        "model": args.model, "source": args.source, "target": args.target, "metric": metric,
        "held_out": f"{args.target} test split, first {len(held_out)} examples", "seeds": args.seeds,
        "steps": args.steps, "source_steps": args.source_steps, "source_init": args.source_init,
        "source_final": source_scores, "batch_size": 8, "summary": summary,
        "runs": runs, "load_avg_start": load_start, "load_avg_end": load_avg(),
        "total_time_s": round(time.time() - t0), "machine": machine_note(),
        "load_log": load_log_summary(args.load_log),
    }  # fmt: skip
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    steps = list(next(iter(summary.values()))["mean"])
    seeds = {arm: [d["seed"] for d in docs] for arm, docs in runs.items()}
    lines = [
        f"# Prompt transfer: {args.source} -> {args.target} ({args.model}, prompt tuning)",
        "",
        f"Target {metric} on {doc['held_out']}, mean over the seeds (min-max), by training step "
        f"(batch 8). Source prompts: {args.source_steps} steps of prompt tuning on {args.source} (the demo's "
        f"prompt length and template; start: {args.source_init}; final {source_metric} {source_scores} on "
        f"{args.source_val} {args.source} validation examples, per seed). {doc['machine']}; shared machine, "
        "several processes side by side, so run times are not speed figures."
        + (
            ""
            if args.summarize_only
            else f" Load average {load_start} at start, {doc['load_avg_end']} at end."
        )
        + load_log_text(doc["load_log"]),
        "",
        "| start (lr) | seeds | " + " | ".join(f"step {s}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for arm, s in summary.items():
        cells = [f"{s['mean'][k]:.3f} ({s['min'][k]:.3f}-{s['max'][k]:.3f})" for k in steps]
        lines.append(f"| {arm} ({s['lr']:g}) | {seeds[arm]} | " + " | ".join(cells) + " |")
    lines += ["", *verdicts(summary, steps)]
    results.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
