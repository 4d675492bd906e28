"""Quality of soft prompts on the built-in datasets: softprompt against hand-written templates, against PEFT
(same method, seed, data order and loss) and against full fine-tuning. Mean ± std over seeds on the test
splits (capped by the preset), with trainable-parameter counts.

    .venv/bin/python bench/quality.py --preset smoke                  # every part runs, a few minutes
    .venv/bin/python bench/quality.py --preset small --only facts     # one part (merged into the files)
    .venv/bin/python bench/quality.py --preset full --estimate        # print the expected duration, run nothing
    .venv/bin/python bench/quality.py --preset standard --only rt-smollm --threads 1 \
        --methods "adaption prompt (defaults)" --libraries softprompt   # some rt-smollm rows only (merged)

Parts (``--only``, comma-separated): ``rt-smollm`` (templates zero-shot; prompt tuning random / label init,
P-tuning, prefix tuning, P-tuning v2, each in softprompt and in PEFT), ``rt-minilm`` and ``punct`` (P-tuning v2
[and prefix tuning] vs full fine-tuning on MiniLM), ``facts`` (best template vs P-tuning v1 vs prompt tuning,
P@1) and ``headlines`` (prefix vs prompt tuning, ROUGE-L, sample outputs). Writes bench/results/quality.json,
quality.md, quality.png and quality-curves.png (validation curves) after every run or part (a partial run
leaves valid files; a later run with the same preset and seeds resumes: finished runs are kept and skipped)
and prints the goals, computed from the numbers. ``--render`` redraws the .md and plots from the .json.

Sizing (measured on this 2-core machine, float32, seconds; "quiet" = nothing else running, 2 torch threads):

=====================================================  ======  =====================================
cost                                                    quiet   how it was measured
=====================================================  ======  =====================================
SmolLM2 train step, RT, batch 8 (~45 tokens + 8 virt.)  2.0     given; 4.5 loaded (load 8, 1 thread)
SmolLM2 scoring one RT review (label-word, no grad)     0.1     estimate, about 1/3 of a step / 8
SmolLM2 headline step, batch 8, 128 positions           5.0     11.4 loaded
SmolLM2 greedy headline, 24 tokens, per article         0.4     0.9 loaded (batches of 8)
SmolLM2 facts step, 1 fact per relation (3 jobs)        0.6     ~1 s loaded (gold-word LM loss, 2026-12-02)
SmolLM2 scoring one capital-of fact (116 candidates)    1.5     2.1 loaded, 1 thread (KV-cached words)
MiniLM step, batch 16: prompt / full fine-tuning        0.3/.45 0.6 / 1.0 loaded
=====================================================  ======  =====================================

Facts train on the gold object's own LM loss (one row per fact, the P-tuning paper's LAMA objective) and are
scored over every candidate object of their relation on the KV cache (each context once, the candidates'
tokens batched after it); before both changes a facts step cost ~27 s and the budgets were a handful of steps.

Presets (estimates on a quiet machine, quality_parts/sizing.py; ``--estimate`` prints them for any preset / seeds / parts):

* ``smoke``: 2 steps everywhere, 8 test examples (facts 3, headlines 4), 1 seed: checks every part runs
  (~5 min quiet; ~15 min on a machine busy with other jobs).
* ``small``: 1 seed; SmolLM2 RT 30 steps x 8, 200 test reviews, all 10 templates, every METHODS row;
  MiniLM 150 steps x 16 (400 / 300 test); facts 6 steps, 9 test facts; headlines 20 steps, 32 test articles.
* ``standard`` (``make bench-quality``), the budgets of issue 11, 3 seeds (0, 1, 2): SmolLM2 RT 200 steps x 8
  for each method at its defaults, softprompt and PEFT, 400 test reviews, validation curve on 100 reviews
  every 25 steps; MiniLM up to 10 epochs x 16 with early stopping (validation 300 every 200 steps, patience
  4), P-tuning v2 at 16 / 32 / 64 tokens on seed 0 and the length best on its validation after, full
  fine-tuning with the same checks, all test examples; facts 100 steps x 2 facts per relation on all 106
  held-out facts; headlines 100 steps x 8, 100 test articles. Many hours (``--estimate``: ~14 h bound without
  early stopping): run it in the background; it resumes run by run, and parts can run side by side in two
  processes with ``--threads 1`` each (recording.py).
* ``full``: 3 seeds; SmolLM2 RT 36 steps, 300 test reviews; MiniLM 200 steps (500 / 400 test); facts 8 steps,
  15 test facts; headlines 24 steps, 40 articles.

On a machine shared with other jobs, one torch thread is much faster: two threads competing with other
processes for two cores measured 40 s per RT step instead of 4.5 s with one. So ``--threads`` defaults to 1
when the load average at start already fills the cores, else to torch's default.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_parts import PARTS, plots, report, rt_smollm
from quality_parts.common import (
    PRESETS,
    Context,
    Preset,
    Recorder,
    machine,
    preset_dict,
    versions,
)
from quality_parts.recording import read_document, same_run
from quality_parts.sizing import estimate

RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = 2
"""Results-document format; a file of an older format (before run-by-run resume) is never merged into."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", choices=list(PRESETS), default="small")
    ap.add_argument(
        "--seeds", type=int, nargs="+", help="default: the preset's (smoke/small 0; standard/full 0 1 2)"
    )
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of: {', '.join(PARTS)}")
    ap.add_argument(
        "--threads",
        type=int,
        help="torch threads; default: 1 when the load average already "
        "fills the cores (other jobs running), else torch's default",
    )
    ap.add_argument(
        "--methods",
        default="",
        help="rt-smollm: comma-separated method labels to train (default: the preset's); the others' runs "
        "are kept",
    )
    ap.add_argument(
        "--libraries",
        default="softprompt,peft",
        help="rt-smollm: comma-separated libraries to train, in this order (default softprompt,peft)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for quality.json / .md / .png")
    ap.add_argument("--estimate", action="store_true", help="print the expected duration per part and exit")
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite quality.md, quality.png and quality-curves.png from quality.json",
    )
    args = ap.parse_args(argv)
    args.parts = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.parts if s not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.method_labels = tuple(s.strip() for s in args.methods.split(",") if s.strip())
    allowed = rt_smollm.methods(PRESETS[args.preset])
    unknown = [m for m in args.method_labels if m not in allowed]
    if unknown:
        ap.error(f"--methods {unknown}: not rows of the {args.preset} preset; choose from {allowed}")
    args.library_names = tuple(s.strip() for s in args.libraries.split(",") if s.strip())
    wrong = [s for s in args.library_names if s not in ("softprompt", "peft")]
    if wrong or not args.library_names:
        ap.error(f"--libraries {args.libraries!r}: choose from softprompt, peft")
    return args


def _document(args, preset: Preset, seeds: list[int], path: Path) -> dict:
    """A fresh results document, keeping parts of the previous file when it used the same preset and seeds."""
    doc = {
        "benchmark": "softprompt quality",
        "format": FORMAT,
        "preset": preset.name,
        "preset_config": preset_dict(preset),
        "seeds": seeds,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine(),
        "versions": versions(),
        "parts": {},
    }
    old = read_document(path)
    if (
        old and old.get("format") == FORMAT and same_run(old, doc)
    ):  # resume: each part keeps its runs when its own config is unchanged
        doc["parts"] = old.get("parts", {})
        doc["first_started"] = old.get("first_started", old.get("date"))
    return doc


def main(argv=None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    seeds = list(args.seeds or preset.seeds)
    if args.render:
        return plots.render(args.out)
    est = estimate(preset, len(seeds))
    print(
        f"preset {preset.name}, seeds {seeds}, parts {', '.join(args.parts)}; estimated on a quiet 2-core "
        f"machine: "
        + ", ".join(f"{k} {est[k] / 60:.0f} min" for k in args.parts)
        + f"; total {sum(est[k] for k in args.parts) / 60:.0f} min"
    )
    if args.estimate:
        return 0
    _stop_on_sigterm()
    torch.set_num_threads(args.threads or _auto_threads())
    warnings.filterwarnings("ignore", message=".*max_length.*")  # the library warns per truncated example
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # PEFT on transformers 5
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "quality.json"
    recorder = Recorder(
        json_path=json_path, render=report.markdown, data=_document(args, preset, seeds, json_path)
    )
    recorder.data["estimate_s"] = {k: round(v) for k, v in est.items()}
    failed = []
    with tempfile.TemporaryDirectory(prefix="softprompt-quality-") as work:
        ctx = Context(
            preset=preset,
            seeds=seeds,
            recorder=recorder,
            work=Path(work),
            methods=args.method_labels,
            libraries=args.library_names,
        )
        for name in args.parts:
            failed += _run_part(name, ctx)
            plots.plot(recorder.data, args.out / "quality.png")
            plots.plot_curves(recorder.data, args.out / "quality-curves.png")
    recorder.data["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    recorder.data["goals"] = report.goals(recorder.data)
    recorder.save()
    print("\ngoals:")
    for g in recorder.data["goals"]:
        print(
            f"  {report.verdict(g['met']):>12}  {g['text']}" + (f"  [{g['detail']}]" if g["detail"] else "")
        )
    print(
        f"\nwrote {json_path}, {json_path.with_suffix('.md')}, {args.out / 'quality.png'}, quality-curves.png"
    )
    if failed:
        print(f"FAILED parts: {', '.join(failed)} (tracebacks in quality.json)")
    return 1 if failed else 0


INTERRUPTED = "interrupted (partial; resumes run by run)"


def _stop_on_sigterm() -> None:
    """`kill` (SIGTERM) stops like Ctrl-C: the part being run is marked interrupted in the files, not left
    "running", and the run being trained is dropped (a later run with the same preset redoes it)."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def _auto_threads() -> int:
    """One thread when other processes already keep the cores busy (2 threads then spin against them and a
    SmolLM2 step measured 40 s instead of 4.5 s), else torch's default."""
    import os

    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] >= cores - 0.5
    if busy:
        print(
            f"load average {os.getloadavg()[0]:.1f} on {cores} cores: using 1 torch thread (--threads overrides)"
        )
    return 1 if busy else torch.get_num_threads()


def _run_part(name: str, ctx: Context) -> list[str]:
    """Run one part; a failure is recorded in the document and reported, the other parts still run."""
    print(f"\n== {name} ==", flush=True)
    t0 = time.perf_counter()
    try:
        PARTS[name](ctx)
        status, failed = "done", []
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see _stop_on_sigterm): keep what finished, say so, stop
        part = ctx.recorder.part(name)
        part["status"], part["elapsed_s"] = INTERRUPTED, round(time.perf_counter() - t0, 1)
        ctx.recorder.save()
        print(f"== {name}: {INTERRUPTED}", flush=True)
        raise
    except Exception as e:
        traceback.print_exc()
        ctx.recorder.part(name)["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        status, failed = "failed", [name]
    part = ctx.recorder.part(name)
    part["status"], part["elapsed_s"] = status, round(time.perf_counter() - t0, 1)
    ctx.recorder.save()
    print(f"== {name}: {status} in {part['elapsed_s']:.0f} s", flush=True)
    return failed


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print(
            "stopped; the files hold every finished run (rerun the same command to resume)", file=sys.stderr
        )
        raise SystemExit(130) from None
