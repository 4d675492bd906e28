"""One prompt-tuning run as the benchmarks of issue 23 train it (bench/ensemble.py, bench/transfer.py).

The demo's prompt-tuning setup (``softprompt.experiments.demo.method_setup``): the dataset's first template, a
prompt as long as the demo's lead-in, batch 8; each run's validation set is scored every ``eval_every`` steps and
the scores are read back from its ``log.jsonl`` (accuracy vs steps).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from softprompt.experiments.demo import INSTRUCTION, method_setup
from softprompt.methods import make_config
from softprompt.prompting.templates import parse_template
from softprompt.tasks import make_task
from softprompt.tasks.base import tokenizer_of
from softprompt.training import TrainConfig, TrainJob, evaluate, train
from softprompt.training.records import read_log

METHOD = "prompt-tuning"


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared: every result records them)."""
    return [round(x, 2) for x in os.getloadavg()]


def demo_fields(model, data) -> tuple[dict, str, float]:
    """(prompt-tuning fields, template, lr) of the demo on ``data``: init from the demo's lead-in text."""
    return method_setup(METHOD, data.spec.default_templates[0], tokenizer_of(model))


def task_for(model, data, template: str, n_virtual: int):
    return make_task(model, data.spec, template=template, virtual_tokens=n_virtual)


def train_prompt(
    model, data, out: Path, *, fields: dict, template: str, lr: float, steps: int, seed: int,
    validation: list[dict], eval_every: int, batch_size: int = 8, info: dict | None = None,
    score_start: bool = True,
) -> dict:  # fmt: skip
    """Train one prompt (fresh run folder ``out``); returns {"curve": [[step, metric], ...], "final": metric,
    "train_time_s"}. The step-0 point is scored before training (unless not ``score_start``); the loop's
    evaluations give the rest."""
    name = "p"
    if name in model.bank:
        model.bank.remove(name)
    if out.exists():
        shutil.rmtree(out)
    task = task_for(model, data, template, fields["num_virtual_tokens"])
    init_ids = parse_template(template).init_token_ids(tokenizer_of(model))
    model.add_prompt(name, make_config(METHOD, **fields), seed=seed, init_token_ids=init_ids,
                     label_words=_label_words(task))  # fmt: skip
    metric = task.main_metric
    start = evaluate(model, task, validation, name)[metric] if score_start else None
    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, eval_every=eval_every, eval_examples=len(validation),
        save_every=steps, seed=seed, log_every=4, warmup_ratio=0.06,
    )  # fmt: skip
    job = TrainJob(
        prompt=name, task=task, train=data.train, validation=validation,
        info={"template": template, "dataset": data.spec.name, "method": METHOD, "spec": data.spec.to_json()}
        | (info or {}),
    )  # fmt: skip
    result = train(model, job, cfg, out, progress=False, run_info={"fields": fields, "lr": lr})
    curve = ([[0, start]] if score_start else []) + [
        [r["step"], r["eval"][name][metric]] for r in read_log(out) if "eval" in r and name in r["eval"]
    ]
    model.bank.remove(name)
    doc = {"curve": curve, "final": curve[-1][1], "metric": metric, "train_time_s": result.train_time_s}
    (out / "curve.json").write_text(json.dumps(doc) + "\n")
    return doc


def _label_words(task) -> list[str] | None:
    from softprompt.commands.common import label_words

    return label_words(task)


__all__ = ["INSTRUCTION", "demo_fields", "load_avg", "machine_note", "train_prompt"]


def machine_note() -> str:
    """CPU count, torch threads and the process's nice value (when not 0), for the results files."""
    import torch

    nice = os.getpriority(os.PRIO_PROCESS, 0)
    return f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads" + (
        f", nice {nice}" if nice else ""
    )


def load_log_summary(path: str | None) -> dict | None:
    """The 1-minute load averages a ``HH:MM:SS load1 load5 load15`` log sampled (one line a minute, written by
    the shell loop that ran beside the runs): first and last time, min, median and max."""
    if not path or not Path(path).is_file():
        return None
    rows = [line.split() for line in Path(path).read_text().splitlines() if len(line.split()) == 4]
    if not rows:
        return None
    ones = sorted(float(r[1]) for r in rows)
    return {"file": str(path), "from": rows[0][0], "to": rows[-1][0], "samples": len(rows),
            "min": ones[0], "median": ones[len(ones) // 2], "max": ones[-1]}  # fmt: skip


def load_log_text(summary: dict | None) -> str:
    if not summary:
        return ""
    return (f" During the runs ({summary['from']}-{summary['to']} UTC, {summary['samples']} samples) the 1-minute "
            f"load average was {summary['min']:g} to {summary['max']:g} (median {summary['median']:g}) on 2 "
            "cores.")  # fmt: skip
