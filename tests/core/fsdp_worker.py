"""One rank of tests/core/test_fsdp.py (run under torchrun, 2 CPU processes on gloo)."""

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from conftest import batch, loss_of, make_model

ROWS = ["prefix_tuning", "prompt_tuning", None, "prefix_tuning"]


def full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model("llama", ["prefix-tuning", "prompt-tuning"])
    ref = make_model("llama", ["prefix-tuning", "prompt-tuning"])  # one process, both ranks' batches
    mesh = init_device_mesh("cpu", (world,))
    for layer in model.backbone.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root: PromptedModel.forward embeds before the backbone runs
    sharded = all(hasattr(p, "full_tensor") for p in model.backbone.parameters())
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(ref.trainable_parameters(), lr=1e-2)
    model.train(), ref.train()
    own = make_model("llama", ["prefix-tuning", "prompt-tuning"])  # control: this rank's batch alone
    loss_of(own, batch(own, rows=4, seed=rank), ROWS).backward()
    for step in range(2):
        loss_of(model, batch(model, rows=4, seed=10 * step + rank), ROWS).backward()
        ref_loss = (
            sum(loss_of(ref, batch(ref, rows=4, seed=10 * step + r), ROWS) for r in range(world)) / world
        )
        ref_loss.backward()
        if step == 0:
            own_diff = max(
                (p.grad - q.grad).abs().max().item()
                for p, q in zip(own.trainable_parameters(), ref.trainable_parameters())
            )
        grad_diff = max(
            (full(p.grad) - q.grad).abs().max().item()
            for p, q in zip(model.trainable_parameters(), ref.trainable_parameters())
        )
        for o in (opt, ref_opt):
            o.step()
            o.zero_grad()
    param_diff = max(
        (full(p.detach()) - q.detach()).abs().max().item()
        for p, q in zip(model.trainable_parameters(), ref.trainable_parameters())
    )
    if rank == 0:
        with open(out, "w") as f:
            json.dump(
                {"sharded": sharded, "grad_diff": grad_diff, "param_diff": param_diff, "own_diff": own_diff},
                f,
            )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    # Skip the interpreter's teardown: after a clean destroy_process_group, torch 2.13's gloo threads
    # sometimes abort in C++ static destructors ("terminate called without an active exception", about one
    # run in eight on 2 CPUs) once everything has been computed and written.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
