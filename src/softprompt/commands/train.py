"""``softprompt train``: train one prompt on a dataset (or evaluate a hard prompt) into a run folder."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softprompt.commands.runconfig import RunSettings
    from softprompt.training import TrainResult

NAME = "train"
HELP = "train a prompt (any method) on a dataset; resumable; torchrun for several processes"
EPILOG = """examples:
  softprompt train --model smollm2-135m --method prompt-tuning --dataset rotten-tomatoes --out runs/pt
  softprompt train --model smollm2-135m --method hard --dataset rotten-tomatoes --out runs/hard \\
      --template "Review: {text}\\nSentiment: {mask}" --verbalizer "positive=good;negative=bad"
  softprompt train --model minilm-l6 --method p-tuning-v2 --dataset reviews.csv --lr 3e-2 \\
      --fields text=review_body,label=stars --out runs/v2   # a pooled head, as the checkpoint pools
  softprompt train --config run.yaml --lr 0.1      # a YAML file, a flag overriding it
  softprompt train --config run.yaml --resume      # continue after a crash (same result, bit for bit)
  softprompt train --method multitask-prompt-tuning --dataset a.csv --dataset b.csv --out runs/mpt
      # one shared prompt over both source tasks (task ids 0, 1; mixed batches); then transfer it:
  softprompt train --method prompt-tuning --dataset target.csv --init file --init-file runs/mpt/best/a
  torchrun --nproc_per_node 2 -m softprompt train --config run.yaml   # 2 processes share --batch-size

run.yaml (every key optional; flags win):
  model: smollm2-135m
  method: p-tuning
  dataset: rotten-tomatoes
  out: runs/pt
  method_args: {num_virtual_tokens: 10, encoder: lstm}
  train: {steps: 300, batch_size: 8, lr: 1.0e-2, patience: 4}
  task: {template: "{soft:5} {text} It was {mask}.", verbalizer: {positive: [great], negative: [terrible]}}

Without --template, a classification run starts from the best of several candidate templates scored zero-shot
on the validation split (printed, and recorded in run.json), soft prompts from its lead-in text; --template
wins. In --template, \\n and \\t mean newline and tab.
The run folder gets run.json, log.jsonl, checkpoints/, best/<name>/ and final/<name>/;
`softprompt eval --prompt OUT` scores the best prompt on the test split.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags
    from softprompt.commands.fields import add_flags, fields_of
    from softprompt.commands.runconfig import TaskOptions, method_fields, methods_with
    from softprompt.methods import TRAINABLE
    from softprompt.training.config import TrainConfig

    run = parser.add_argument_group("run")
    for flag, doc in (
        (
            "model",
            "built-in name (smollm2-135m, minilm-l6), Hugging Face id or local folder "
            "(default: smollm2-135m)",
        ),
        ("method", "one of `softprompt methods`: " + ", ".join(TRAINABLE)),
        (
            "dataset",
            "built-in name (see `softprompt datasets`) or your .jsonl/.csv/... file or folder; repeated with "
            "multitask-prompt-tuning: one source task per dataset, trained together, task ids in order "
            "(other methods: the last one wins)",
        ),
        (
            "out",
            "run folder (new or empty; or this run's, with --resume; default: runs/<dataset>-<method>, "
            "numbered -2, -3... when taken)",
        ),
        ("name", "prompt name (default: the dataset's name)"),
    ):
        run.add_argument(
            f"--{flag}",
            dest=f"top.{flag}",
            default=argparse.SUPPRESS,
            metavar=flag.upper(),
            help=doc,
            action="append" if flag == "dataset" else "store",
        )
    run.add_argument("--config", metavar="YAML", help="settings file (layout below); flags override it")
    run.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_flags(run)
    add_flags(
        parser.add_argument_group("method options (see `softprompt methods`)"),
        method_fields(),
        "method_args",
        help_suffix=lambda f: f" [{', '.join(methods_with(f.name))}]",
    )
    add_flags(parser.add_argument_group("training options"), fields_of(TrainConfig), "train")
    add_flags(parser.add_argument_group("task options"), fields_of(TaskOptions), "task")


def run(args: argparse.Namespace) -> int:
    from softprompt.commands.common import is_main_process, model_flags, print_json, quiet_loading
    from softprompt.commands.runconfig import resolve
    from softprompt.training.devices import check_hardware

    settings = resolve(args)  # every setting checked before the model is loaded
    check_hardware(settings.train)
    if args.json or args.quiet:
        quiet_loading()
    progress = not (args.json or args.quiet)
    _, summary = train_from_settings(settings, resume=args.resume, progress=progress, **model_flags(args))
    if is_main_process():
        from softprompt.commands.multitask import summary_text

        print_json(summary) if args.json else print(
            summary_text(summary) if "prompts" in summary else _text(summary)
        )
    return 0


def train_from_settings(
    s: RunSettings,
    *,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str | None = None,
) -> tuple[TrainResult, dict]:
    """Load data and model, build the task and prompt, train. Returns (TrainResult, summary dict).

    The template is checked before the data loads (syntax), before the model loads (the data's fields, a
    masked LM's ``{mask}``) and on one example of each split before the run folder is written to.
    """
    import torch

    from softprompt.commands.backbone import check_train_device
    from softprompt.commands.common import init_token_ids, label_words, load_backbone, prompt_name
    from softprompt.commands.rundata import checked_data, run_records
    from softprompt.commands.start import choose_start
    from softprompt.tasks import make_task
    from softprompt.tasks.base import check_prompts, tokenizer_of
    from softprompt.tasks.classify import VerbalizerTask
    from softprompt.training import TrainJob, train

    if s.more_datasets:  # several source datasets: one multitask prompt over all of them
        from softprompt.commands.multitask import train_sources

        return train_sources(
            s, resume=resume, progress=progress, device=device, dtype=dtype, quantize=quantize
        )
    check_train_device(device)
    data = checked_data(s)
    model = load_backbone(s.model, device=device, dtype=dtype, quantize=quantize)
    torch.manual_seed(s.train.seed)  # task heads are initialized from the global generator
    choice, template, config, train_cfg = choose_start(s, data, model, progress)
    task = make_task(
        model,
        data.spec,
        template=template,
        verbalizer=s.task.verbalizer or (choice.verbalizer if choice else None),
        head=s.task.head,
        virtual_tokens=config.num_virtual_tokens,
        max_length=s.task.max_length,
    )
    if choice is not None and isinstance(task, VerbalizerTask):  # (a chosen template scores label words)
        task.choice = choice  # recorded in run.json and prompt.json
    train_cfg = _head_rate(s, task, train_cfg, progress)
    config, soft = _fill_soft_slots(s, config, task)
    for split in (data.train, data.validation):  # a template that cannot encode fails before run.json exists
        if split:
            task.collate(split[:1])
    name = s.name or prompt_name(data.spec.name)
    model.add_prompt(
        name,
        config,
        label_words=label_words(task),
        init_token_ids=init_token_ids(task, tokenizer_of(model)),
        seed=s.train.seed,
    )
    check_prompts(model, [name], soft)  # {soft} slots and virtual tokens agree, before run.json is written
    info, run_info, splits = run_records(s, data, task, dtype, choice, quantize)
    job = TrainJob(name, task, data.train, data.validation, info=info)
    result = train(model, job, train_cfg, s.out, resume=resume, progress=progress, run_info=run_info)
    return result, _summary(s, result, config.method, name, task, choice, splits)


def _summary(s, result, method: str, name: str, task, choice, splits: dict) -> dict:
    """What ``softprompt train`` prints (as text or --json)."""
    return {
        "method": method,
        "prompt": name,
        "trainable_params": result.trainable_params,
        "steps": result.steps,
        "metrics": result.metrics.get(name, {}),
        "best_step": result.best_step.get(name),
        "main_metric": task.main_metric,
        "final_loss": result.final_loss,
        "stopped_early": result.stopped_early,
        "train_time_s": result.train_time_s,
        "template": getattr(getattr(task, "template", None), "source", None),
        "head": _head(task),
        "zero_shot": None
        if choice is None
        else {"template": choice.full_template, choice.metric: choice.score},
        "splits": splits,
        "out": str(s.out),
        "best": str(s.out / "best" / name) if result.best_step else None,
        "final": str(s.out / "final" / name),
    }


def _head(task) -> str | None:
    """The pooled head's pooling and why (printed and in the summary), None for other tasks."""
    pool = getattr(getattr(task, "head", None), "pool", None)
    return None if pool is None else f"{pool} pooling ({task.pool_source})"


def _fill_soft_slots(s, config, task):
    """(config, number of {soft} slots): a template's {soft} slots set the virtual tokens unless given."""
    from softprompt.methods import make_config

    soft = getattr(getattr(task, "template", None), "num_soft", 0)
    if soft and "num_virtual_tokens" not in s.method_args and config.num_virtual_tokens:
        config = make_config(config.method, **{**s.method_args, "num_virtual_tokens": soft})
    return config, soft


def _head_rate(s, task, train_cfg, progress: bool):
    """A task that trains a new head (bare encoders) starts from the method's rates for that case (its
    registered ``Method.train_with_head``: ``lr``, ``head_lr``) where the user gave none of their own."""
    import sys
    from dataclasses import replace

    from softprompt.training.config import TrainConfig

    if not task.modules():
        return train_cfg
    head = TrainConfig.for_method(s.method, trained_head=True)
    changes = {
        k: getattr(head, k)
        for k in ("lr", "head_lr")
        if k not in s.train_given and getattr(head, k) != getattr(train_cfg, k)
    }
    if changes and progress:
        rates = ", ".join(f"{k} {v:g}" for k, v in changes.items())
        flags = " / ".join(f"--{k.replace('_', '-')}" for k in changes)
        print(f"{s.method}: {rates} (the default with a trained head; {flags} overrides)", file=sys.stderr)
    return replace(train_cfg, **changes)


def _text(summary: dict) -> str:
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items()) or "(no validation data)"
    if summary["trainable_params"] == 0:
        head = f"{summary['method']} prompt {summary['prompt']!r}: nothing to train, template evaluated"
    else:
        early = " (stopped early)" if summary["stopped_early"] else ""
        head = (
            f"{summary['method']} prompt {summary['prompt']!r}: {summary['trainable_params']:,} trainable "
            f"parameters, {summary['steps']} steps{early} in {summary['train_time_s']:.1f} s"
        )
    where = f" (best at step {summary['best_step']})" if summary["best_step"] is not None else ""
    lines = [head, f"validation{where}: {metrics}"]
    if summary.get("head"):
        lines.insert(1, f"classification head: {summary['head']}")
    if summary.get("zero_shot"):
        start = summary["zero_shot"]
        (metric, score), *_ = [(k, v) for k, v in start.items() if k != "template"]
        lines.insert(1, f"template: {summary['template']!r}; chosen start: {start['template']!r} "
                        f"(zero-shot {metric} {score:.4f})")  # fmt: skip
    lines.append(
        f"saved: {summary['best']} (best), {summary['final']} (final)"
        if summary["best"]
        else f"saved: {summary['final']}"
    )
    lines.append(f"next: softprompt eval --prompt {summary['out']} --split test")
    return "\n".join(lines)
