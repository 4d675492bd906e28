"""Where one training step of bench/quantize.py's accuracy run spends its time, on one backbone (torch.profiler).

The accuracy run's setup (the demo's prompt tuning on Rotten Tomatoes, SmolLM2-135M real weights, 1 torch
thread): one small warm-up step (batch 2), then one profiled step of batch 8; prints the ops by self CPU time,
then by op and input shape (so the int8 layers' matmuls, the tied output head and attention show apart).

    python bench/quantize_profile.py 'int8 + bf16' > bench/results/quantize-profile-int8-bf16.log
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import quantize_children


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("backbone", choices=list(quantize_children.BACKBONES), nargs="?", default="int8 + bf16")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rows", type=int, default=30, help="rows of each table")
    args = p.parse_args()
    from softprompt.data import load_dataset
    from softprompt.methods import make_config

    torch.set_num_threads(1)
    data = load_dataset("rotten-tomatoes", seed=0)
    model = quantize_children.load_backbone(args.backbone)
    task, fields, lr, init = quantize_children.demo_task(model, data)
    model.add_prompt("pt", make_config("prompt-tuning", **fields), seed=0, init_token_ids=init)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    model.train()

    def step(rows: list) -> None:
        task.loss(model, task.collate(rows), ["pt"] * len(rows)).backward()
        opt.step()
        opt.zero_grad()

    step(data.train[:2])  # warm-up: first-call setup (the int8 layers' row scales) stays out of the profile
    b = args.batch_size
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step(data.train[b : 2 * b])
    print(f"{args.backbone}: one profiled step of batch {b}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(
        prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40
        )
    )
    by_shape = prof.key_averages(group_by_input_shape=True)
    print(by_shape.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_shapes_column_width=90))


if __name__ == "__main__":
    main()
