"""The training loop: one for every method, on Accelerate (device placement, autocast, accumulation, ranks).

Prompts and task heads are the only trainable parameters; the backbone stays frozen. Gradients are averaged
over processes by one all-reduce per optimizer step (the model is not wrapped in DDP: the trainable part is
a few small tensors), so N processes with per-process batch B/N step exactly like one process with batch B.
Launched with an FSDP config, the frozen backbone is sharded over the processes (``training.sharding``) while
the prompts and heads stay whole, so everything above holds unchanged.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from softprompt.core.arch import fingerprints_match
from softprompt.errors import ConfigError
from softprompt.files import checkpoint
from softprompt.files.prompts import save_prompt
from softprompt.training.batches import Plan
from softprompt.training.config import TrainConfig
from softprompt.training.devices import make_accelerator
from softprompt.training.evaluation import evaluate_sharded
from softprompt.training.jobs import TrainJob, TrainResult, check_jobs, describe_task
from softprompt.training.optim import optimizer, param_groups, scheduler
from softprompt.training.records import Log, Ownership, check_out_dir, owning, resume_note, write_run

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
from softprompt.training.resume import RunState, restore, save
from softprompt.training.sharding import fsdp_plugin, shard


def train(
    model: PromptedModel,
    jobs: TrainJob | list[TrainJob],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    run_info: dict | None = None,
) -> TrainResult:
    """Train the jobs' prompts (and task heads) together; write checkpoints, logs and prompts to ``out_dir``.

    Args:
        model: a ``PromptedModel`` whose bank holds every job's prompt.
        jobs: one job, or several trained at once (see ``training.batches`` for how they share batches).
        config: the training configuration; ``batch_size`` is the global batch over all processes.
        out_dir: the run folder (layout in ``training.records``); it must be new or empty, or hold this same
            run and ``resume`` be True.
        resume: continue from ``out_dir``'s latest checkpoint (bit-identical to an uninterrupted run).
        progress: show a progress bar (main process only).
        run_info: recorded in run.json and compared on resume (model name, dataset, task options, ...).

    Raises:
        ConfigError: ``out_dir`` holds another run, or the config does not fit the hardware / process count.
    """
    jobs = check_jobs(model, [jobs] if isinstance(jobs, TrainJob) else list(jobs))
    return _Trainer(model, jobs, config, Path(out_dir), run_info or {}).run(resume, progress)


class _Trainer:
    def __init__(self, model, jobs: list[TrainJob], config: TrainConfig, out: Path, run_info: dict):
        self.model, self.jobs, self.config, self.out = model, jobs, config, out
        self.acc = acc = make_accelerator(config)
        if config.batch_size % acc.num_processes:
            raise ConfigError(
                f"batch_size={config.batch_size} is the global batch and must be a multiple of the "
                f"{acc.num_processes} processes"
            )
        self.main = acc.is_main_process
        plugin = fsdp_plugin(acc)
        if plugin is None:  # (sharded: fully_shard moves each process's shard, the whole model never moves)
            model.to(acc.device)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.modules: dict[str, nn.Module] = {f"prompt.{j.prompt}": model.bank.get(j.prompt) for j in jobs}
        seen = set()
        for j in jobs:
            for key, m in j.task.modules().items():
                if id(m) not in seen:
                    seen.add(id(m))
                    self.modules[f"head.{j.prompt}.{key}"] = m.to(acc.device)
        self.groups = param_groups(self.modules, config)
        self.params = [p for g in self.groups for p in g["params"]]
        self.sharding: dict | None = None
        if plugin is not None:
            trainable = [p for p in model.parameters() if p.requires_grad]
            self.sharding = shard(model, trainable, plugin, acc.device, acc.num_processes)
            model.bank.to(acc.device)  # the prompts stay whole: FSDP does not move them
        self.plan = Plan(jobs, config.batch_size, config.seed, acc.num_processes)
        self.description = {
            "config": config.to_json(),
            "mode": self.plan.mode,
            "backbone": model.info.fingerprint,
            "prompts": [
                {
                    "name": j.prompt,
                    "method": model.bank.get(j.prompt).config.to_json(),
                    "train_examples": len(j.train),
                    "validation_examples": len(j.validation),
                    **describe_task(j.task),
                }
                for j in jobs
            ],
            **run_info,
        }
        self.state = RunState()

    # ----- run --------------------------------------------------------------------------------------------
    def run(self, resume: bool, progress: bool) -> TrainResult:
        with owning(self.out, self.acc, self._write_run) as own:  # the folder's lock; "failed" on an error
            return self._run(resume, progress, own)

    def _run(self, resume: bool, progress: bool, own: Ownership) -> TrainResult:
        acc, config = self.acc, self.config
        resuming = check_out_dir(
            self.out, self.description, resume, lambda saved: fingerprints_match(saved, self.model.info)
        )
        acc.wait_for_everyone()  # every rank has read the folder before the main one writes to it
        ckpt = checkpoint.latest(self.out) if resuming else None
        if resume and self.main and (said := resume_note(self.out, resuming, own.note, ckpt)):
            warnings.warn(said, stacklevel=4)  # (the caller of train())
        self._fresh_start()
        self._write_run("running")
        own.started = True
        self.state.t0 = time.perf_counter()
        if not self.params:  # e.g. a hard prompt: nothing to train, only evaluate
            self.log = Log(self.out, enabled=self.main, keep_until=None)
            self._evaluate()
            return self._finish()
        opt = acc.prepare_optimizer(optimizer(self.groups, config))  # (prepare() wants the model under FSDP)
        sched = scheduler(opt.optimizer, config)
        if ckpt is not None:
            restore(ckpt, self.state, acc, self.modules, opt, sched)
        self.log = Log(self.out, enabled=self.main, keep_until=self.state.step if ckpt is not None else None)
        self._loop(opt, sched, progress)
        return self._finish()

    def _fresh_start(self) -> None:
        from accelerate.utils import set_seed

        set_seed(self.config.seed)
        if self.acc.num_processes > 1:  # every rank starts from rank 0's prompts and heads
            for m in self.modules.values():
                for t in m.state_dict().values():
                    torch.distributed.broadcast(t, src=0)

    def _loop(self, opt, sched, progress: bool) -> None:
        c, state = self.config, self.state
        sizes = f"{sum(len(j.train) for j in self.jobs):,} train / {sum(len(j.validation) for j in self.jobs):,} val"
        bar = tqdm(
            total=c.steps,
            initial=state.step,
            desc=f"train ({sizes})",
            unit="step",
            dynamic_ncols=True,
            disable=not (progress and self.main),
        )
        window = [0.0, 0, time.perf_counter()]  # loss sum, steps, start time
        modes = [(m, m.training) for m in (self.model, *self.modules.values())]
        for m, _ in modes:
            m.train()  # dropout on for prompts and heads (PromptedModel keeps the frozen backbone in eval)
        while state.step < c.steps and not state.stopped:
            loss = self._step(opt, sched)
            state.step += 1
            window[0], window[1] = window[0] + loss, window[1] + 1
            bar.set_postfix(loss=f"{window[0] / window[1]:.4f}", refresh=False)  # from the first step on
            if state.step % c.log_every == 0 or state.step == c.steps:
                self._log_window(window, sched, bar)
                window = [0.0, 0, time.perf_counter()]
            if self._due(c.eval_every):
                self._evaluate()
            if self._due(c.save_every) or state.stopped:
                save(self.out, state, self.acc, self.modules, opt, sched, epoch=self._epoch())
            bar.update(1)
        bar.close()
        for m, was in modes:
            m.train(was)

    def _due(self, every: int) -> bool:
        step = self.state.step
        return (every > 0 and step % every == 0) or step == self.config.steps

    def _epoch(self) -> float:
        return self.plan.epoch(self.state.step * self.config.grad_accum)

    def _step(self, opt, sched) -> float:
        acc, c = self.acc, self.config
        total = 0.0
        for a in range(c.grad_accum):
            groups = self.plan.micro_batch(self.state.step * c.grad_accum + a, acc.process_index)
            with acc.accumulate():
                with acc.autocast():
                    loss = sum(g.task.loss(self.model, g.task.collate(g.examples), g.prompts) for g in groups)
                    assert isinstance(loss, torch.Tensor)  # (groups is never empty)
                acc.backward(loss)
                total += loss.item()
                if acc.sync_gradients:
                    self._sync_gradients()
                    if c.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.params, c.max_grad_norm)
                opt.step()
                opt.zero_grad()
        sched.step()
        return total / c.grad_accum

    def _sync_gradients(self) -> None:
        """Average gradients over processes (one all-reduce); a parameter without a gradient gets zeros."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.acc.num_processes > 1:
            flat = self.acc.reduce(torch.cat([p.grad.reshape(-1) for p in self.params]), reduction="mean")
            for p, g in zip(self.params, flat.split([p.numel() for p in self.params])):
                p.grad.copy_(g.view_as(p))

    # ----- logging, evaluation, results -------------------------------------------------------------------
    def _log_window(self, window, sched, bar) -> None:
        loss = window[0] / max(window[1], 1)
        if self.acc.num_processes > 1:
            loss = self.acc.reduce(torch.tensor([loss], dtype=torch.float64), reduction="mean").item()
        seconds = max(time.perf_counter() - window[2], 1e-9)
        speed = window[1] * self.config.grad_accum * self.plan.examples_per_micro_step() / seconds
        self.state.last_loss = loss
        self.log.write(
            {
                "step": self.state.step,
                "epoch": self._epoch(),
                "loss": loss,
                "lr": sched.get_last_lr()[0],
                "examples_per_s": round(speed, 2),
                "elapsed": round(self.state.elapsed(), 3),
            }
        )
        bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{speed:.1f}")

    def _evaluate(self) -> None:
        results, improved = {}, False
        for job in self.jobs:
            if not job.validation:
                continue
            examples = job.validation[: self.config.eval_examples]
            m = evaluate_sharded(
                self.model,
                job.task,
                examples,
                job.prompt,
                self.config.eval_batch_size,
                self.acc,
                lockstep=self.sharding is not None,
            )
            results[job.prompt] = m
            if self.state.record_eval(job.prompt, m[job.task.main_metric], m):
                improved = True
                self._save_prompt(job, "best", m)
        if not results:
            return
        self.log.write({"step": self.state.step, "eval": results, "elapsed": round(self.state.elapsed(), 3)})
        self.state.end_eval(improved, self.config.patience)

    def _save_prompt(self, job: TrainJob, kind: str, metrics: dict | None) -> None:
        if not self.main:
            return
        heads = job.task.modules()
        head = heads.get("head") if list(heads) == ["head"] else (nn.ModuleDict(heads) if heads else None)
        extra = {**describe_task(job.task), **job.info, "metrics": metrics, "step": self.state.step}
        save_prompt(self.model, job.prompt, self.out / kind / job.prompt, extra=extra, head=head)

    def _finish(self) -> TrainResult:
        state = self.state
        for job in self.jobs:
            self._save_prompt(job, "final", state.last_metrics.get(job.prompt))
        result = TrainResult(
            out_dir=self.out,
            steps=state.step,
            trainable_params=sum(p.numel() for p in self.params),
            train_time_s=round(state.elapsed(), 3),
            final_loss=state.last_loss,
            metrics=state.best_metrics or state.last_metrics,
            best_step=state.best_step,
            stopped_early=state.stopped and state.step < self.config.steps,
            mode=self.plan.mode,
        )
        self._write_run("finished", asdict(result))
        self.acc.wait_for_everyone()
        return result

    def _write_run(self, status: str, result: dict | None = None, error: str | None = None) -> None:
        if self.main:
            n, shards = self.acc.num_processes, self.sharding
            write_run(self.out, self.description, status=status, result=result, world_size=n, sharding=shards, error=error)  # fmt: skip
