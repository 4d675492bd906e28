"""``softprompt train --method multitask-prompt-tuning --dataset A --dataset B ...``: one multitask prompt over
several source datasets in one run (Wang et al. 2023). Dataset i is task id i: a prompt per source task (named
after its dataset) tied to one shared prompt and one set of low-rank factors (``share_across_tasks``), trained
by the one loop over mixed batches (rows of every task in each batch). Transfer to a target task afterwards:
``softprompt train --dataset TARGET --init file --init-file RUN/best/<source>`` (its shared prompt)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softprompt.commands.runconfig import RunSettings
    from softprompt.training import TrainResult

METHOD = "multitask-prompt-tuning"


def train_sources(
    s: RunSettings,
    *,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str | None = None,
) -> tuple[TrainResult, dict]:
    """Train the shared multitask prompt over ``s``'s datasets (``s.dataset`` is task 0, ``s.more_datasets``
    tasks 1..); returns (TrainResult, summary dict) as ``train_from_settings`` does."""
    import torch

    from softprompt.commands.backbone import check_train_device
    from softprompt.commands.common import load_backbone
    from softprompt.commands.rundata import checked_data, local_ref
    from softprompt.methods.multitask_prompt_tuning import share_across_tasks
    from softprompt.training import TrainJob, train

    datasets = (s.dataset, *s.more_datasets)
    check_train_device(device)
    data = [checked_data(replace(s, dataset=d)) for d in datasets]  # every dataset checked before the model
    model = load_backbone(s.model, device=device, dtype=dtype, quantize=quantize)
    torch.manual_seed(s.train.seed)
    jobs: list[TrainJob] = []
    summaries: list[dict] = []
    for task_id, (dataset, d) in enumerate(zip(datasets, data)):
        job, summary = _source_job(model, replace(s, dataset=dataset), d, task_id, [j.prompt for j in jobs],
                                   dtype, quantize, progress)  # fmt: skip
        jobs.append(job)
        summaries.append(summary)
    share_across_tasks(model, [j.prompt for j in jobs])
    run_info = {
        "model": local_ref(s.model),
        "datasets": [local_ref(d) for d in datasets],
        "task_options": asdict(s.task),
    }
    run_info |= {"dtype": dtype} if dtype != "float32" else {}
    run_info |= {"quantize": quantize} if quantize is not None else {}
    result = train(model, jobs, s.train, s.out, resume=resume, progress=progress, run_info=run_info)
    return result, _summary(s, result, summaries)


def _source_job(model, s: RunSettings, data, task_id: int, taken: list[str], dtype, quantize, progress):
    """(TrainJob, per-task summary) of source dataset ``s.dataset`` as task ``task_id``."""
    from softprompt.commands.common import prompt_name
    from softprompt.commands.rundata import run_records
    from softprompt.commands.start import choose_start
    from softprompt.methods import make_config
    from softprompt.tasks import make_task
    from softprompt.tasks.classify import VerbalizerTask
    from softprompt.training import TrainJob

    choice, template, config, _ = choose_start(s, data, model, progress)
    task = make_task(model, data.spec, template=template,
                     verbalizer=s.task.verbalizer or (choice.verbalizer if choice else None), head=s.task.head,
                     virtual_tokens=config.num_virtual_tokens, max_length=s.task.max_length)  # fmt: skip
    if choice is not None and isinstance(task, VerbalizerTask):
        task.choice = choice
    for split in (data.train, data.validation):  # a template that cannot encode fails before run.json exists
        if split:
            task.collate(split[:1])
    name, n = prompt_name(data.spec.name), 2
    while name in taken:
        name, n = f"{prompt_name(data.spec.name)}-{n}", n + 1
    model.add_prompt(name, make_config(METHOD, **{**s.method_args, "task_id": task_id}), seed=s.train.seed)
    info, _, splits = run_records(s, data, task, dtype, choice, quantize)
    info["task_id"] = task_id
    summary = {"prompt": name, "task_id": task_id, "dataset": s.dataset, "splits": splits,
               "template": getattr(getattr(task, "template", None), "source", None),
               "main_metric": task.main_metric}  # fmt: skip
    return TrainJob(name, task, data.train, data.validation, info=info), summary


def _summary(s: RunSettings, result, tasks: list[dict]) -> dict:
    """What ``softprompt train`` prints for a multitask run (as text or --json)."""
    return {
        "method": METHOD,
        "prompts": [
            t
            | {
                "metrics": result.metrics.get(t["prompt"], {}),
                "best_step": result.best_step.get(t["prompt"]),
                "best": str(s.out / "best" / t["prompt"]) if result.best_step.get(t["prompt"]) else None,
                "final": str(s.out / "final" / t["prompt"]),
            }
            for t in tasks
        ],
        "trainable_params": result.trainable_params,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "stopped_early": result.stopped_early,
        "train_time_s": result.train_time_s,
        "out": str(s.out),
    }


def summary_text(summary: dict) -> str:
    """The multitask summary as the lines ``softprompt train`` prints."""
    early = " (stopped early)" if summary["stopped_early"] else ""
    lines = [
        f"{METHOD}: {len(summary['prompts'])} source tasks sharing one prompt, {summary['trainable_params']:,} "
        f"trainable parameters, {summary['steps']} steps{early} in {summary['train_time_s']:.1f} s"
    ]
    for t in summary["prompts"]:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in t["metrics"].items()) or "(no validation data)"
        lines.append(f"  task {t['task_id']} {t['prompt']!r} ({t['dataset']}): validation {metrics}")
    first = summary["prompts"][0]
    lines.append(f"saved: {summary['out']}/best|final/<prompt> (every prompt holds the shared part)")
    lines.append(
        f"next: softprompt train --method {METHOD} --dataset TARGET --init file --init-file "
        f"{first['best'] or first['final']}   # transfer the shared prompt"
    )
    return "\n".join(lines)
