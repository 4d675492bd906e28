"""``softprompt demo``: the main job — hard prompts vs trained soft prompts on real data (``make demo``)."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "score hand-written templates, train soft prompts, compare them on held-out data, write a report"
EPILOG = """examples:
  softprompt demo                                  # SmolLM2-135M on Rotten Tomatoes, ~15 min on 2 CPU cores
  softprompt demo --steps 200 --eval-examples 500  # a longer, tighter run
  softprompt demo --methods prompt-tuning prefix-tuning --out runs/demo2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags
    from softprompt.experiments.demo import DemoConfig

    d = DemoConfig()
    parser.add_argument("--model", default=d.model, help=f"backbone (default: {d.model})")
    parser.add_argument("--out", default=d.out, help=f"output folder (default: {d.out})")
    parser.add_argument(
        "--steps", type=int, default=d.steps, help=f"training steps per method (default: {d.steps})"
    )
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    parser.add_argument(
        "--templates",
        type=int,
        default=d.templates,
        help=f"hand-written templates to score (default: {d.templates})",
    )
    parser.add_argument(
        "--eval-examples",
        type=int,
        default=d.eval_examples,
        help=f"held-out reviews scored per template/prompt (default: {d.eval_examples})",
    )
    parser.add_argument(
        "--val-examples",
        type=int,
        default=d.val_examples,
        help=f"validation reviews for best-checkpoint selection (default: {d.val_examples})",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=d.methods,
        metavar="METHOD",
        help=f"soft methods to train (default: {' '.join(d.methods)})",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    add_model_flags(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from softprompt.commands.backbone import check_train_device, resolve_device
    from softprompt.commands.common import quiet_loading
    from softprompt.errors import ConfigError, Positive, check_value
    from softprompt.experiments.demo import DemoConfig, run_demo

    for name in ("steps", "batch_size", "templates", "eval_examples", "val_examples"):
        check_value(name, getattr(args, name), Positive)  # before any loading (DemoConfig checks them too)
    check_train_device(args.device)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder for the demo's runs and report")
    quiet_loading()
    run_demo(
        DemoConfig(
            model=args.model,
            out=args.out,
            steps=args.steps,
            batch_size=args.batch_size,
            templates=args.templates,
            eval_examples=args.eval_examples,
            val_examples=args.val_examples,
            methods=list(args.methods),
            seed=args.seed,
            device=str(resolve_device(args.device)),
            dtype=args.dtype,
            quantize=args.quantize,
        )
    )
    return 0
