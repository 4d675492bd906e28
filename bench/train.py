"""Side by side with PEFT on SmolLM2-135M: train-step time, peak memory, inference / generation latency, and
whether both libraries compute the same losses (quality).

    .venv/bin/python bench/train.py                       # 7 methods + the floors, then long inputs (make bench)
    .venv/bin/python bench/train.py --methods prompt-tuning --steps 1 --warmup 1 --mem-steps 1 \
        --infer-reps 1 --gen-reps 1 --out /tmp/train.json   # smoke run, ~2 min

Timing runs both sides in this process, interleaved A B A B after warm-up, so machine noise (other jobs on the
CPU) hits both alike; medians and ratios are reported, in wall time and in CPU time (one torch thread by
default: with other jobs on the cores, CPU time per step barely moves while wall time can swing 5x).
Peak memory is measured for each side in its own fresh child process (one per side per method) over the same
steps. Both sides start from the same prompt values
(softprompt's init copied into PEFT) and see the same batches, so their first losses must agree (after that,
Adam amplifies float differences, and prefix tuning's parameterizations differ, see common.copy_prompt).
P-tuning is run with both encoders (MLP = PEFT's default, bi-LSTM = the paper's), the same on both sides.
Writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from softprompt.io.atomic import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import floor
import train_report
from train_memory import measure_memory


def _interleave(sides, fn_name: str, arg_fn, warmup: int, reps: int) -> dict[str, dict[str, list[float]]]:
    """Call ``side.<fn_name>(*arg_fn(i))`` A B A B …; wall and CPU milliseconds after warm-up, per side."""
    ms = {clock: {s.name: [] for s in sides} for clock in ("wall", "cpu")}
    for i in range(warmup + reps):
        for s in sides:
            w0, c0 = time.perf_counter(), time.process_time()
            getattr(s, fn_name)(*arg_fn(i))
            if i >= warmup:
                ms["wall"][s.name].append((time.perf_counter() - w0) * 1000)
                ms["cpu"][s.name].append((time.process_time() - c0) * 1000)
    return ms


def _ratios(ms: dict[str, list[float]]) -> tuple[float, float]:
    sp, pf = ms["softprompt"], ms["peft"]
    return (
        round(statistics.median(sp) / statistics.median(pf), 3),
        round(statistics.median(a / b for a, b in zip(sp, pf)), 3),
    )


def _summary(ms: dict[str, dict[str, list[float]]]) -> dict:
    """Medians per side; ratio of medians (the headline), median of per-pair ratios, and the same in CPU time
    (CPU time hardly moves when other jobs take the cores, so it is the steadier of the two)."""
    wall, cpu = ms["wall"], ms["cpu"]
    ratio, paired = _ratios(wall)
    cpu_ratio, cpu_paired = _ratios(cpu)
    return {
        "median_ms": {k: round(statistics.median(v), 2) for k, v in wall.items()},
        "ratio_vs_peft": ratio,
        "paired_ratio_median": paired,
        "median_cpu_ms": {k: round(statistics.median(v), 2) for k, v in cpu.items()},
        "cpu_ratio_vs_peft": cpu_ratio,
        "cpu_paired_ratio_median": cpu_paired,
        "samples_ms": {k: [round(x, 1) for x in v] for k, v in wall.items()},
        "samples_cpu_ms": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
    }


def padding_gap(side, b: dict) -> float:
    """Max |next-token logit, row in a left-padded batch - the same row alone|: 0 up to float error when
    padding does not change what a row sees."""
    batched = side.next_logits(b)
    worst = 0.0
    for r in range(batched.shape[0]):
        ids = b["input_ids"][r][b["attention_mask"][r].bool()][None]
        alone = side.next_logits({"input_ids": ids, "attention_mask": torch.ones_like(ids)})[0]
        worst = max(worst, float((batched[r] - alone).abs().max()))
    return worst


def measure_speed(method: str, args, tok) -> dict:
    data = common.batches(tok, args.data_batches, args.batch, args.seq_len)
    sp = common.softprompt_side(method, args.num_virtual_tokens, args.lr, args.seed)
    pf = common.peft_side(method, args.num_virtual_tokens, args.lr, args.seed)
    if method in common.SAME_START:
        common.copy_prompt(sp, pf)
    sides = (sp, pf)
    held = common.batches(tok, 1, args.batch, args.seq_len, split="validation")[0]
    start_loss = {s.name: s.eval_loss(held) for s in sides}
    floors = (floor.floor_side(method, args.num_virtual_tokens, args.lr, args.seed),)
    floors += (floor.bare_side(method, args.num_virtual_tokens, args.lr, args.seed),)

    def step_args(i):
        return (data[i % len(data)],)

    train = _summary(_interleave(sides + floors, "step", step_args, args.warmup, args.steps))
    out = {
        "train_step": train,
        "floor": floor.ratios(train, floors[0].name),
        "heldout_loss_before": start_loss,
        "heldout_loss_after": {s.name: s.eval_loss(held) for s in sides},
    }
    out["train_loss"] = {s.name: [round(x, 4) for x in s.losses] for s in sides}
    out["train_loss"]["max_abs_diff"] = max(abs(a - b) for a, b in zip(sp.losses, pf.losses))
    out["train_loss"]["step0_abs_diff"] = abs(sp.losses[0] - pf.losses[0])  # same parameters, same batch
    out["train_loss"]["same_start"] = method in common.SAME_START  # else each library's own init
    out["inference"] = _summary(_interleave(sides, "infer", lambda i: (held,), 1, args.infer_reps))
    gb = common.prompts_batch(tok, args.batch, args.seq_len)
    out["padding_gap_max_abs_logit"] = {s.name: padding_gap(s, gb) for s in sides}
    if args.new_tokens:
        gen = _interleave(sides, "generate", lambda i: (gb, args.new_tokens), 1, args.gen_reps)
        out["generation"] = _summary(gen)
        a, b = (s.generate(gb, args.new_tokens) for s in sides)
        # 1 until a row's first disagreement; on left-padded rows PEFT's positions shift with the padding
        # (see padding_gap), so this measures that as much as the two libraries' numerics
        same = (a == b[:, -args.new_tokens :]).long().cumprod(1)
        out["generation"]["first_token_agreement"] = round(float(same[:, 0].float().mean()), 3)
        out["generation"]["agreed_prefix_fraction"] = round(float(same.float().mean()), 3)
    return out


def run_method(method: str, args, tok) -> dict:
    sp_method, sp_fields, peft_cls, peft_fields, note = common.METHODS[method]
    entry = {
        "method": method,
        "detail": note,
        "softprompt_config": {"method": sp_method, **sp_fields},
        "peft_config": {"class": peft_cls, **peft_fields},
    }
    mem = measure_memory(method, args) if args.mem_steps else None
    speed = measure_speed(method, args, tok)
    entry["step_time_ratio_vs_peft"] = speed["train_step"]["ratio_vs_peft"]
    entry["step_cpu_time_ratio_vs_peft"] = speed["train_step"]["cpu_ratio_vs_peft"]
    if mem:
        sp, pf = mem["softprompt"], mem["peft"]
        entry["peak_mem_ratio_vs_peft"] = round(  # peak RSS over the steps after the first, weights included
            sp["train_peak_rss_mib"] / pf["train_peak_rss_mib"], 3
        )
        entry["train_mem_increase_ratio_vs_peft"] = round(
            sp["train_increase_mib"] / pf["train_increase_mib"], 3
        )
        entry["memory"] = {
            **mem,
            "steps": args.mem_steps,
            "definition": "per side, a fresh process: load, 1 warm-up step, reset the peak-RSS mark "
            "(/proc/self/clear_refs), mem_steps steps; train_peak_rss_mib = VmHWM "
            "(weights included); train_increase_mib = peak minus RSS before those steps",
        }
    if mem:
        speed["floor"].update(floor.memory_ratios(mem))
    entry["inference_ratio_vs_peft"] = speed["inference"]["ratio_vs_peft"]
    if "generation" in speed:
        entry["generation_ratio_vs_peft"] = speed["generation"]["ratio_vs_peft"]
    entry.update(speed)
    return entry


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--methods", default=",".join(common.METHODS), help="comma-separated: " + ", ".join(common.METHODS)
    )
    p.add_argument("--steps", type=int, default=5, help="timed train steps per side (after warm-up)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--num-virtual-tokens", type=int, default=20)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument(
        "--mem-steps", type=int, default=3, help="train steps in each memory child; 0 = skip memory"
    )
    p.add_argument("--infer-reps", type=int, default=5)
    p.add_argument("--gen-reps", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=16, help="greedy tokens generated; 0 = skip generation")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: steadiest ratios when other jobs share the cores)",
    )
    p.add_argument(
        "--long-lengths", default="128,512,2048", help="long-input token counts ('' = skip long inputs)"
    )
    p.add_argument("--long-methods", default="prompt-tuning,prefix-tuning")
    p.add_argument("--long-reps", type=int, default=5, help="timed steps per side at each length")
    p.add_argument("--long-batch", type=int, default=1)
    p.add_argument(
        "--long-checkpointing",
        default="off,on",
        help="gradient checkpointing settings at each length: off,on",
    )
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train.json"))
    p.add_argument("--long-out", default=str(Path(__file__).resolve().parent / "results" / "train-long.json"))
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.long_lengths = [int(x) for x in args.long_lengths.split(",") if x.strip()]
    args.long_methods = [m.strip() for m in args.long_methods.split(",") if m.strip()]
    settings = [x.strip() for x in args.long_checkpointing.split(",") if x.strip()]
    if not settings or set(settings) - {"off", "on"}:
        p.error(f"--long-checkpointing takes off, on or off,on; got {args.long_checkpointing!r}")
    args.long_checkpointing = [x == "on" for x in settings]
    unknown = [m for m in args.methods if m not in common.METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {list(common.METHODS)}")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    tok = common.tokenizer()
    stamp = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_average_start": [
            round(x, 2) for x in os.getloadavg()
        ],  # 1, 5, 15 min; the machine may be shared
    }
    rows = []
    for method in args.methods:
        print(f"[bench] {method} ...", flush=True)
        entry = run_method(method, args, tok)
        entry.update(
            steps=args.steps,
            warmup=args.warmup,
            batch=args.batch,
            seq_len=args.seq_len,
            num_virtual_tokens=args.num_virtual_tokens,
            lr=args.lr,
            **stamp,
        )
        entry["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        rows.append(entry)
        print(train_report.table(rows[-1:]).splitlines()[-1], flush=True)
        atomic_write_text(
            args.out, json.dumps(rows, indent=1) + "\n"
        )  # after each method: a cut run keeps them
    train_report.print_summary(rows, args, stamp)
    if args.long_lengths:
        _run_long(args, tok, stamp)


def _run_long(args, tok, stamp: dict) -> None:
    """Every method and checkpointing setting at one length before the next, longer one; the file is rewritten
    after each row."""
    long_rows = []
    for length in args.long_lengths:
        for method in args.long_methods:
            for ckpt in args.long_checkpointing:
                long_rows.append(floor.measure_long(method, length, ckpt, args, tok))
                long_rows[-1]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
                print(f"[long] {long_rows[-1]}", flush=True)
                atomic_write_text(args.long_out, json.dumps({**stamp, "rows": long_rows}, indent=1) + "\n")
    print(floor.long_table(long_rows))
    print(f"wrote {args.long_out}")


if __name__ == "__main__":
    main()
