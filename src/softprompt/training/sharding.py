"""Fully sharded training of a frozen backbone (FSDP2: torch's ``fully_shard``), set up from Accelerate's config.

``accelerate launch`` with an FSDP config (``distributed_type: FSDP``, ``fsdp_version: 2``) tells each process
so through its environment (``ACCELERATE_USE_FSDP``, ``FSDP_*``); Accelerate's ``FullyShardedDataParallelPlugin``
reads it. On a GPU machine Accelerate also switches its own state to FSDP; on a CPU-only machine it does not
(its ranks are gloo ``MULTI_CPU`` processes), so the loop reads the request itself and shards the same way on
both.

What is sharded: each of the backbone's transformer blocks (the classes its ``_no_split_modules`` names) is one
``fully_shard`` unit, and the ``PromptedModel`` is the root unit (its forward embeds the tokens before the
backbone runs), holding what is left (embeddings, final norm, output head). The prompts and task heads are the
root's *ignored* parameters: whole on every process, not DTensors, so their gradients are all-reduced by the
loop exactly as without FSDP, the optimizer holds state for them alone, and a checkpoint saves them as they
are: nothing of the backbone is ever gathered into a state dict.

DeepSpeed ZeRO-3 is refused (``check_launch``; why: README, Scaling out, and bench/results/deepspeed-cpu.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch
from torch import nn

from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

    from softprompt.core.model import PromptedModel

FSDP_ENV = "ACCELERATE_USE_FSDP"
DEEPSPEED_ENV = "ACCELERATE_USE_DEEPSPEED"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def check_launch() -> None:
    """Refuse a launch configuration the loop would not train correctly (before any work is done)."""
    if _env_flag(DEEPSPEED_ENV):
        raise ConfigError(
            "distributed_type=DEEPSPEED (accelerate launch with a DeepSpeed config) is not supported: on a "
            "machine without a GPU Accelerate then reports every rank as process 0 of 1 (each would train on the "
            "whole batch as the main process; bench/results/deepspeed-cpu.md), and ZeRO-3's engine would own the "
            "model, backward and optimizer step that the training loop keeps. For a backbone too large for one "
            "device use an FSDP config (distributed_type: FSDP, fsdp_version: 2); see README, Scaling out"
        )
    if _env_flag(FSDP_ENV):
        version = os.environ.get("FSDP_VERSION", "1")
        if version != "2":
            raise ConfigError(
                f"fsdp_version={version} is not supported: softprompt shards with FSDP2 (torch's fully_shard); "
                "set fsdp_version: 2 in the accelerate config (or --fsdp_version 2)"
            )


def fsdp_plugin(accelerator: Accelerator) -> FullyShardedDataParallelPlugin | None:
    """Accelerate's FSDP plugin when this run was launched with an FSDP config, else None."""
    if not _env_flag(FSDP_ENV):
        return None
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None:  # CPU ranks: accelerate keeps MULTI_CPU and leaves the plugin to us
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()
    return plugin


def shard(
    model: PromptedModel,
    keep_whole: list[nn.Parameter],
    plugin: FullyShardedDataParallelPlugin,
    device: torch.device,
    world: int,
) -> dict:
    """Shard ``model``'s frozen backbone over ``world`` processes in place; ``keep_whole`` stay replicated.

    Returns:
        What run.json records: the kind, the number of ``fully_shard`` units (the blocks and the root), and how
        many backbone weights this process holds of how many.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, OffloadPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world,))
    reshard = plugin.reshard_after_forward if isinstance(plugin.reshard_after_forward, bool) else True
    offload = plugin.cpu_offload if isinstance(plugin.cpu_offload, OffloadPolicy) else OffloadPolicy()
    # No mixed-precision policy: the backbone computes in the dtype it was loaded in, under the loop's autocast,
    # exactly as without FSDP (so a sharded run equals an unsharded one).
    policy = MixedPrecisionPolicy()
    blocks = set(getattr(model.backbone, "_no_split_modules", None) or ())  # e.g. {"LlamaDecoderLayer"}
    units = [m for m in model.backbone.modules() if type(m).__name__ in blocks]
    for module in units:
        fully_shard(
            module, mesh=mesh, reshard_after_forward=reshard, offload_policy=offload, mp_policy=policy
        )
    fully_shard(model, mesh=mesh, ignored_params=set(keep_whole), offload_policy=offload, mp_policy=policy)
    frozen = {id(p): p for p in model.backbone.parameters()}.values()
    return {
        "kind": "fsdp2",
        "units": len(units) + 1,
        "backbone_params": sum(p.numel() for p in frozen),
        "backbone_params_here": sum(getattr(p, "_local_tensor", p).numel() for p in frozen),
    }
