"""Peak memory of ``bench/train.py``: each side (softprompt, PEFT) in its own fresh child process over the same
steps, one after the other, so neither's allocations count against the other."""

from __future__ import annotations

import multiprocessing as mp

import torch

import common
import floor

FACTORIES = {**common.SIDES, "floor": floor.floor_side}
"""Every side whose peak memory is measured: the two libraries and the floor of the method's kind."""


def _memory_child(side: str, method: str, args, queue) -> None:
    """Peak RSS of one side in a fresh process: one warm-up step (weights paged in, optimizer state made),
    then the peak-RSS mark is reset and ``mem_steps`` more steps run; then the same for one inference batch."""
    torch.set_num_threads(args.threads)
    tok = common.tokenizer()
    data = common.batches(tok, args.data_batches, args.batch, args.seq_len)
    s = FACTORIES[side](method, args.num_virtual_tokens, args.lr, args.seed)
    loaded = common.rss_mib()
    s.step(data[0])
    base = common.rss_mib()
    common.reset_peak_rss()
    for i in range(args.mem_steps):
        s.step(data[(i + 1) % len(data)])
    trained = common.rss_mib()
    common.reset_peak_rss()
    s.infer(data[0])
    queue.put(
        {
            "after_load_rss_mib": round(loaded["rss"], 1),
            "first_step_peak_rss_mib": round(base["hwm"], 1),
            "after_first_step_rss_mib": round(base["rss"], 1),
            "train_peak_rss_mib": round(trained["hwm"], 1),
            "train_increase_mib": round(trained["hwm"] - base["rss"], 1),
            "infer_peak_rss_mib": round(common.rss_mib()["hwm"], 1),
        }
    )


def measure_memory(method: str, args) -> dict:
    """Each side in its own fresh process, one after the other (never concurrently)."""
    ctx = mp.get_context("spawn")
    out = {}
    for side in FACTORIES:
        q = ctx.Queue()
        p = ctx.Process(target=_memory_child, args=(side, method, args, q))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"memory child for {side} / {method} failed (exit code {p.exitcode})")
        out[side] = q.get(timeout=30)
    return out
